"""Messages a user or a script acts on: mixed products at one time, side files, log options, advice."""

from __future__ import annotations

import numpy as np
import pytest

from nowcast.config import validate
from nowcast.errors import MissingFramesError
from nowcast.ingest.config import IngestConfig
from nowcast.ingest.run import run_ingest
from nowcast.predict.raw_input import list_files
from tests.cf_archive import write_archive
from tests.readers_helpers import write_odim

RAW = np.array([[255, 0, 20, 40], [60, 80, 255, 10], [0, 5, 7, 9]], dtype=np.uint8)


def odim(path, quantity: bytes, time: bytes):
    what = {"gain": 0.1, "offset": 0.0, "nodata": 255.0, "undetect": 0.0}
    period = {"startdate": b"20240601", "starttime": b"110000", "enddate": b"20240601", "endtime": time}
    dataset = {"quantity": quantity, "raw": RAW, "what": what, "dataset_what": period}
    return write_odim(path, [dataset], time=time)


def ingest(tmp_path, **reader):
    config = {
        "source": {"paths": [str(tmp_path / "src")], "reader": reader},
        "store": {"path": str(tmp_path / f"s{len(reader)}.zarr"), "chunk_time": 4, "chunk_space": 16},
        "align": {"time_step_s": 300},
        "engine": {"name": "serial"},
    }
    return run_ingest(validate(IngestConfig, config), progress=False)


def test_rate_and_accumulation_at_one_time_are_refused_or_picked_by_config(tmp_path):
    (tmp_path / "src").mkdir()
    for stamp in (b"120000", b"120500"):
        odim(tmp_path / "src" / f"rate_20240601{stamp.decode()}.h5", b"RATE", stamp)
        odim(tmp_path / "src" / f"acrr_20240601{stamp.decode()}.h5", b"ACRR", stamp)
    summary = ingest(tmp_path)
    reasons = [reason for _, reason in summary.quarantined]
    assert len(reasons) == 2 and all("two products at one time" in r and "source.reader.quantity" in r for r in reasons)
    assert all("RATE" in r and "ACRR" in r for r in reasons)
    picked = ingest(tmp_path, quantity="RATE")  # the config picks one: ACRR-only files say why they are left out
    assert picked.counts["ingested"] == 2
    assert all("quantity 'RATE'" in r and "ACRR" in r for _, r in picked.quarantined)


def test_log_level_after_the_subcommand_and_gif_folder_advice(tmp_path, cli):
    (tmp_path / "gifs").mkdir()
    for name in ("AQC2415312000_00005.801.gif", "AQC2415312050_00005.801.gif"):
        (tmp_path / "gifs" / name).write_bytes(b"GIF89a")
    with pytest.raises(MissingFramesError, match="no radar files.*--format pysteps:mch_gif"):
        list_files(tmp_path / "gifs")
    assert len(list_files(tmp_path / "gifs", keep_side_files=True)) == 2  # a format was named: GIFs are read
    write_archive(tmp_path / "raw", 2, shape=(8, 8))
    quiet = cli("inspect", "--log-level", "ERROR", *sorted((tmp_path / "raw").iterdir()))
    assert quiet.exit_code == 0 and "rainfall_rate (rainfall_rate, mm h-1)" in quiet.output


def test_a_store_at_another_pixel_size_gets_advice_that_works(tmp_path, cli):
    from nowcast.store import write_mock_store
    from tests.predict_helpers import write_checkpoint

    reader = write_mock_store(str(tmp_path / "m.zarr"), n_times=6, missing=(), pixel_size=2000.0)
    ckpt = write_checkpoint(tmp_path / "m.pt", pixel_size_m=1000.0)
    done = cli("predict", "--checkpoint", ckpt, "--input", reader.path, "--out", tmp_path / "f.nc")
    assert done.exit_code == 2 and "align.pixel_size_m: 1000" in done.output


def test_files_at_another_step_than_the_store_are_named(tmp_path, caplog):
    write_archive(tmp_path / "src", 4, shape=(8, 8), step_min=15)
    config = {
        "source": {"paths": [str(tmp_path / "src")]},
        "store": {"path": str(tmp_path / "s.zarr"), "chunk_time": 4, "chunk_space": 16},
        "align": {"time_step_s": 300},
        "engine": {"name": "serial"},
    }
    with caplog.at_level("WARNING"):
        summary = run_ingest(validate(IngestConfig, config), progress=False)
    assert summary.n_valid == 4 and summary.n_times == 10  # every third step holds a scan, the rest stay missing
    assert "files every 900 s onto a 300 s time axis" in caplog.text and "align.time_step_s: 900" in caplog.text
