"""The Zarr store: the one contract between ingest and everything after it.

Layout of one store (a Zarr format 3 group per radar domain)::

    rainrate (time, y, x)  uint16, value * 0.01 = mm/h, 65535 = no data (NaN), chunked, compressed
    valid    (time,)       bool, True where a scan was ingested for that time
    time     (time,)       int64 seconds since 1970-01-01 UTC: a regular axis, origin + i * step
    y, x                   pixel centres, projection metres (y decreasing: north-up rows)
    crs                    CF grid mapping (pyproj's CF attributes and crs_wkt), named by rainrate
    attrs                  crs, pixel_size_m, time_step_s, time_origin, source, units, chunking
    zarr.json              also holds consolidated metadata, refreshed at the end of every ingest
    _manifest/             JSON records of every source file seen (see ``nowcast.manifest``)
    ingest-config.yaml     the resolved config of the last ingest

CF-1.8 as xarray and rioxarray read it: ``xr.open_zarr(path)`` opens from the consolidated
metadata, so it never lists the folder and the manifest and config beside the arrays do not
warn; ``ds.rio.crs`` comes from the ``crs`` variable. The project's own reads and writes open
the live metadata (``use_consolidated=False``): consolidated metadata goes stale while an
ingest grows the time axis, until the ingest ends and consolidates again.

The time axis is pre-allocated and regular: a missing scan stays a row with ``valid=False``
and NaN data, never an invented frame, and no time can be written twice by appending. Each
write task owns whole time chunks (all spatial chunks of them), so no two tasks ever write
the same chunk. Readers see float32 mm/h with NaN, whatever the on-disk encoding.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from nowcast.cf import GRID_MAPPING, crs_attributes, xy_attributes
from nowcast.errors import StoreError
from nowcast.scan import Grid

RAIN_RATE = "rainrate"  # the array's name on disk (store contract); `rain_rate` in code
VALID = "valid"
TIME = "time"
SCALE_MMH = 0.01  # lossless to 0.01 mm/h
FILL_RAW = np.uint16(65535)
MAX_RAIN_MMH = (int(FILL_RAW) - 1) * SCALE_MMH  # 655.34 mm/h, the largest storable rate
TIME_UNITS = "seconds since 1970-01-01 00:00:00"  # of every time we write: store, forecasts, synthetic scans
TIME_CHUNK_COORD = 1 << 20


def encode_rain(rain_mmh: np.ndarray) -> np.ndarray:
    """float mm/h with NaN -> uint16 hundredths with the fill value; rates above the max clip."""
    rain = np.asarray(rain_mmh, dtype=np.float32)
    missing = ~np.isfinite(rain)
    raw = np.rint(np.clip(np.where(missing, 0, rain), 0, MAX_RAIN_MMH) / SCALE_MMH).astype(np.uint16)
    raw[missing] = FILL_RAW
    return raw


def decode_rain(raw: np.ndarray) -> np.ndarray:
    """uint16 hundredths -> float32 mm/h with NaN for no data."""
    rain = raw.astype(np.float32) * np.float32(SCALE_MMH)
    rain[raw == FILL_RAW] = np.nan
    return rain


def to_epoch_s(time: Any) -> int:
    return int(np.datetime64(time, "s").astype(np.int64))


def from_epoch_s(seconds: Any) -> np.ndarray:
    return np.asarray(seconds, dtype=np.int64).astype("datetime64[s]")


@dataclass(frozen=True)
class StoreLayout:
    """What fixes a store's shape: its grid, time axis and chunking."""

    grid: Grid
    time_origin: np.datetime64  # time of index 0
    time_step_s: int
    chunk_time: int
    chunk_space: int

    def index_of(self, time: Any) -> int:
        """Index on the regular axis (may be negative or past the end)."""
        offset = to_epoch_s(time) - to_epoch_s(self.time_origin)
        return offset // self.time_step_s

    def time_of(self, index: int | np.ndarray) -> np.ndarray:
        return from_epoch_s(to_epoch_s(self.time_origin) + np.asarray(index) * self.time_step_s)

    def chunk_of(self, index: int) -> int:
        return index // self.chunk_time


def create_store(path: str, layout: StoreLayout, n_times: int, attrs: dict[str, Any] | None = None) -> zarr.Group:
    """Write the template: metadata and coordinates only, no data chunks (they read as missing)."""
    grid = layout.grid
    ny, nx = grid.shape
    n_times = max(n_times, 1)
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.attrs.update(
        {
            "title": "nowcast radar rain-rate store",
            "crs": grid.crs,
            "pixel_size_m": grid.pixel_size,
            "time_step_s": int(layout.time_step_s),
            "time_origin": str(np.datetime64(layout.time_origin, "s")),
            "chunk_time": int(layout.chunk_time),
            "chunk_space": int(layout.chunk_space),
            "rain_units": "mm h-1",
            "store_version": 1,
            **(attrs or {}),
        }
    )
    space = (min(layout.chunk_space, ny), min(layout.chunk_space, nx))
    rain = root.create_array(
        RAIN_RATE,
        shape=(n_times, ny, nx),
        chunks=(layout.chunk_time, *space),
        dtype="uint16",
        fill_value=int(FILL_RAW),
        compressors=BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle"),
        dimension_names=("time", "y", "x"),
    )
    rain.attrs.update(
        {
            "units": "mm h-1",
            "standard_name": "rainfall_rate",
            "long_name": "rain rate",
            "scale_factor": SCALE_MMH,
            "add_offset": 0.0,
            "_FillValue": int(FILL_RAW),
            "grid_mapping": GRID_MAPPING,
            "coverage_content_type": "physicalMeasurement",
        }
    )
    valid = root.create_array(
        VALID, shape=(n_times,), chunks=(layout.chunk_time,), dtype="bool", fill_value=False, dimension_names=("time",)
    )
    valid.attrs["long_name"] = "True where a scan was ingested for this time"
    time = root.create_array(
        TIME, shape=(n_times,), chunks=(TIME_CHUNK_COORD,), dtype="int64", fill_value=0, dimension_names=("time",)
    )
    time.attrs.update({"units": TIME_UNITS, "calendar": "proleptic_gregorian", "standard_name": "time"})
    time[:] = to_epoch_s(layout.time_origin) + np.arange(n_times, dtype=np.int64) * layout.time_step_s
    for name, values in (("y", grid.y), ("x", grid.x)):
        coord = root.create_array(
            name, shape=values.shape, chunks=values.shape, dtype="float64", fill_value=0.0, dimension_names=(name,)
        )
        coord[:] = values
        coord.attrs.update(xy_attributes(grid.crs, name))
    mapping = root.create_array(GRID_MAPPING, shape=(), dtype="int32", fill_value=0, dimension_names=())
    mapping.attrs.update(crs_attributes(grid.crs))
    root.attrs["Conventions"] = "CF-1.8"
    root.attrs["template_complete"] = True  # written last: a half-made template is recreated
    consolidate(path)
    return root


def consolidate(path: str) -> None:
    """Write the consolidated metadata that ``xr.open_zarr`` reads (after every change of shape).

    zarr warns that the side files (manifest, config) are not Zarr nodes and that consolidated
    metadata is not in the Zarr v3 specification yet; both are known here, and only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy")
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(path, zarr_format=3)


def open_group(path: str, mode: str = "r") -> zarr.Group:
    try:
        root = zarr.open_group(path, mode=mode, zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as e:
        raise StoreError(f"no nowcast store at {path}: run `nowcast ingest` first") from e
    if RAIN_RATE not in root or VALID not in root:
        raise StoreError(f"{path} is a Zarr group but not a nowcast store (no {RAIN_RATE!r}/{VALID!r} arrays)")
    return root


def is_store(path: str) -> bool:
    """True when ``path`` (a local path or an fsspec URL such as ``s3://bucket/x.zarr``) holds a Zarr group."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(str(path))
        return fs.isfile(f"{root.rstrip('/')}/zarr.json")
    except (ImportError, OSError, ValueError):
        return False


def read_layout(root: zarr.Group) -> StoreLayout:
    attrs = root.attrs
    grid = Grid(x=root["x"][:], y=root["y"][:], crs=str(attrs["crs"]))
    return StoreLayout(
        grid=grid,
        time_origin=np.datetime64(attrs["time_origin"], "s"),
        time_step_s=int(attrs["time_step_s"]),
        chunk_time=int(attrs["chunk_time"]),
        chunk_space=int(attrs["chunk_space"]),
    )


def time_length(root: zarr.Group) -> int:
    """Rows of the time axis: the longest time-indexed array (a crash while growing may leave them unequal)."""
    return max(root[RAIN_RATE].shape[0], root[VALID].shape[0], root[TIME].shape[0])


def ensure_length(root: zarr.Group, layout: StoreLayout, n_times: int) -> int:
    """Grow the time axis to at least ``n_times`` rows; new rows read as missing.

    Idempotent and safe to repeat after a crash part-way through: every time-indexed array is
    brought to the same length and the time coordinate is rewritten when it is not the
    regular axis. Returns the resulting length.
    """
    n_times = max(n_times, time_length(root))
    ny, nx = layout.grid.shape
    if root[RAIN_RATE].shape[0] != n_times:
        root[RAIN_RATE].resize((n_times, ny, nx))
    if root[VALID].shape[0] != n_times:
        root[VALID].resize((n_times,))
    expected = to_epoch_s(layout.time_origin) + np.arange(n_times, dtype=np.int64) * layout.time_step_s
    if root[TIME].shape[0] != n_times:
        root[TIME].resize((n_times,))
    if not np.array_equal(root[TIME][:], expected):
        root[TIME][:] = expected
    return n_times


def trim_trailing_missing(root: zarr.Group, layout: StoreLayout) -> int:
    """Shrink the time axis to its last valid row, so a store always ends with data.

    Ingest grows the axis from the times in file names before reading the files; when the
    files at the end turn out bad, the rows planned for them are given back.
    """
    valid = np.asarray(root[VALID][:], dtype=bool)
    last = int(np.flatnonzero(valid)[-1]) + 1 if valid.any() else 0
    n_times = max(last, 1)
    if n_times < valid.shape[0]:
        ny, nx = layout.grid.shape
        root[RAIN_RATE].resize((n_times, ny, nx))
        root[VALID].resize((n_times,))
        root[TIME].resize((n_times,))
    return n_times


def template_complete(root: zarr.Group) -> bool:
    """False for a template that a killed run left half-created (it holds no data yet)."""
    return bool(root.attrs.get("template_complete")) and all(k in root for k in (RAIN_RATE, VALID, TIME, "x", "y"))


class StoreReader:
    """Read-only access to a store, cheap to pickle: arrays are opened lazily in each process.

    Training workers, predict and evaluate read through this class only.
    """

    def __init__(self, path: str):
        self.path = str(path)
        root = open_group(self.path)
        self._root: zarr.Group | None = root
        self.layout = read_layout(root)
        self.attrs = dict(root.attrs)
        self.valid = np.asarray(root[VALID][:], dtype=bool)
        self.times = from_epoch_s(root[TIME][:])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_root"] = None  # each process opens its own handle
        return state

    @property
    def root(self) -> zarr.Group:
        if self._root is None:
            self._root = open_group(self.path)
        return self._root

    @property
    def grid(self) -> Grid:
        return self.layout.grid

    @property
    def n_times(self) -> int:
        return len(self.valid)

    @property
    def chunk_time(self) -> int:
        return self.layout.chunk_time

    @property
    def time_step_s(self) -> int:
        return self.layout.time_step_s

    @property
    def pixel_size_m(self) -> float:
        return self.grid.pixel_size

    def read(self, start: int, stop: int, ys: slice = slice(None), xs: slice = slice(None)) -> np.ndarray:
        """Rain rate (stop-start, ny, nx) float32 mm/h with NaN, for time indices [start, stop).

        Raises:
            StoreError: the store vanished or broke while in use.
        """
        try:
            return decode_rain(self.root[RAIN_RATE][start:stop, ys, xs])
        except (KeyError, OSError, ValueError) as e:
            raise StoreError(
                f"{self.path}: could not read times {start}-{stop - 1} ({type(e).__name__}: {e}); "
                "was the store deleted or rewritten while in use?"
            ) from e


def open_dataset(path: str):
    """The store as an xarray Dataset: rain rate as float32 mm/h with NaN for no data.

    Raises:
        StoreError: a store written before consolidated metadata, naming the command that adds it.
    """
    import xarray as xr

    open_group(path)  # a nowcast store, or a StoreError naming the path
    if zarr.open_group(path, mode="r", zarr_format=3).metadata.consolidated_metadata is None:
        raise StoreError(
            f"{path} was written by an older nowcast without consolidated metadata; run `nowcast ingest` "
            'with its config again (nothing is re-read) or `python -c "import nowcast.store as s; '
            f"s.consolidate('{path}')\"` to add it"
        )
    ds = xr.open_zarr(path, zarr_format=3)
    ds[RAIN_RATE] = ds[RAIN_RATE].astype(np.float32)  # xarray decodes uint16 * 0.01 to float64
    return ds


def write_time_chunk(
    root: zarr.Group, layout: StoreLayout, chunk: int, rain_mmh: np.ndarray, valid: np.ndarray
) -> None:
    """Write one whole time chunk (all its spatial chunks): the unit of work a task owns.

    Data goes first, then the valid flags, so an interrupted write leaves times marked
    missing rather than valid with half-written data.
    """
    start = chunk * layout.chunk_time
    stop = start + len(valid)
    if rain_mmh.shape[0] != len(valid) or (len(valid) != layout.chunk_time and stop != root[RAIN_RATE].shape[0]):
        raise ValueError(f"chunk {chunk}: a write must cover the whole time chunk")
    root[RAIN_RATE][start:stop] = encode_rain(rain_mmh)
    root[VALID][start:stop] = valid


def chunk_bounds(layout: StoreLayout, chunk: int, n_times: int) -> tuple[int, int]:
    start = chunk * layout.chunk_time
    return start, min(start + layout.chunk_time, n_times)


def write_mock_store(
    path: str,
    n_times: int = 48,
    shape: tuple[int, int] = (64, 64),
    chunk_time: int = 8,
    missing: tuple[int, ...] = (20,),
    seed: int = 0,
    pixel_size: float = 1000.0,
    time_step_s: int = 300,
) -> StoreReader:
    """A small valid store of rain blobs moving east, for tests that need a store and nothing else."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    grid = Grid.from_corner(0.0, ny * pixel_size, pixel_size, shape, "+proj=stere +lat_0=90 +lon_0=0 +units=m")
    layout = StoreLayout(grid, np.datetime64("2024-06-01T00:00:00", "s"), time_step_s, chunk_time, 256)
    root = create_store(path, layout, n_times, attrs={"source": "mock"})
    yy, xx = np.mgrid[0:ny, 0:nx]
    centres = rng.uniform(0, 1, size=(4, 2)) * np.array([ny, nx])
    rain = np.zeros((n_times, ny, nx), np.float32)
    for t in range(n_times):
        for k, (cy, cx) in enumerate(centres):
            r2 = (yy - cy) ** 2 + (xx - (cx + 0.7 * t) % nx) ** 2
            rain[t] += (5.0 + 5 * k) * np.exp(-r2 / (2 * (3 + k) ** 2))
    rain[:, :3, :] = np.nan  # a strip of no data
    rain = np.round(rain, 2)
    valid = np.ones(n_times, bool)
    valid[list(missing)] = False
    rain[~valid] = np.nan
    for chunk in range(-(-n_times // chunk_time)):
        start, stop = chunk_bounds(layout, chunk, n_times)
        write_time_chunk(root, layout, chunk, rain[start:stop], valid[start:stop])
    consolidate(path)
    return StoreReader(path)
