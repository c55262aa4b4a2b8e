"""The Spark engine: early checks (Java, master), the engine contract, and the same store as Dask.

The checks run against real programs (a fake old ``java`` script, an empty PATH, a closed port).
The slow tests run on the test run's one Spark cluster (``spark_cluster`` in conftest.py): a
standalone master with two one-core workers on loopback, its SparkContext shared by every test.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import py4j.java_gateway
import pytest
import xarray as xr
from pyspark import cloudpickle

from nowcast import store
from nowcast.config import validate
from nowcast.errors import ConfigError
from nowcast.ingest import manifest
from nowcast.ingest.config import EngineConfig, IngestConfig
from nowcast.ingest.engines import open_engine
from nowcast.ingest.run import run_ingest
from nowcast.logs import setup_logging
from tests.cf_archive import write_archive
from tests.clusters import free_port

MASTER = "local[2]"
RUN_SPECIFIC_ATTRS = ("ingest_config",)  # names the engine that wrote the store


def spark_config(master: str = MASTER, **spark) -> EngineConfig:
    return EngineConfig(name="spark", spark={"master": master, **spark})


def ingest_config(src: Path, dst: Path, engine: dict) -> IngestConfig:
    return validate(
        IngestConfig,
        {
            "source": {"paths": [str(src)]},
            "store": {"path": str(dst), "chunk_time": 4, "chunk_space": 16},
            "engine": engine,
        },
    )


def fake_java(folder: Path, version_line: str) -> Path:
    """A JAVA_HOME whose bin/java prints ``version_line`` the way ``java -version`` does (stderr)."""
    java = folder / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return folder


def test_missing_java_says_how_to_install_it(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ConfigError, match=r"no `java` on the PATH.*Java 17.*openjdk-17.*JAVA_HOME"):
        with open_engine(spark_config()):
            pass


def test_java_8_is_refused_before_spark_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path / "jdk8", 'java version "1.8.0_392"')))
    with pytest.raises(ConfigError, match=r"Java 8, but pyspark 4 needs Java 17\+"):
        with open_engine(spark_config()):
            pass


def test_java_home_without_java_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=f"JAVA_HOME is {tmp_path}.*does not exist"):
        with open_engine(spark_config()):
            pass


def test_new_java_passes_the_check(tmp_path, monkeypatch):
    from nowcast.ingest.engines.spark import check_java, java_major_version

    for line, major in (('openjdk version "17.0.15" 2025-04-15', 17), ('openjdk version "21" 2023-09-19', 21)):
        home = fake_java(tmp_path / str(major), line)
        assert java_major_version(home / "bin" / "java") == major
        monkeypatch.setenv("JAVA_HOME", str(home))
        check_java()


def test_unreachable_master_is_named(monkeypatch):
    url = f"spark://127.0.0.1:{free_port()}"  # nobody listens there
    with pytest.raises(ConfigError, match=rf"cannot reach the Spark master at {url}.*check that the master runs"):
        with open_engine(spark_config(url)):
            pass


def test_spark_conf_runs_workers_on_this_interpreter():
    from nowcast.ingest.engines.spark import spark_conf

    conf = spark_conf(spark_config(executor_memory="2g", conf={"spark.ui.enabled": "true"}).spark)
    assert conf["spark.pyspark.python"] == sys.executable == conf["spark.pyspark.driver.python"]
    assert conf["spark.driver.host"] == "127.0.0.1" and conf["spark.executor.memory"] == "2g"
    assert conf["spark.ui.enabled"] == "true"  # the user's conf wins over our defaults
    remote = spark_conf(spark_config("spark://head.example.org:7077").spark)
    assert "spark.driver.host" not in remote and remote["spark.ui.enabled"] == "false"


@pytest.fixture
def spark_engine(spark_cluster):
    """The engine on the run's shared SparkContext; ingests on the same master reuse it."""
    return spark_cluster.engine


# Spark's Python workers cannot import this test module: ship its task functions by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _TwoArgError(Exception):
    def __init__(self, item, why):  # rebuilt from args=(message,) on unpickling: fails
        super().__init__(f"item {item}: {why}")


def _fail_on_odd(x: int) -> int:
    if x == 7:
        raise _TwoArgError(x, "cannot be pickled back")
    if x % 2:
        raise ValueError(f"odd item {x}")
    return x * 10


def _slow_first(x: int) -> int:
    import time

    time.sleep(6.0 if x == 0 else 0.0)
    return x


def _crash_worker_on_3(x: int) -> int:
    if x == 3:
        os._exit(17)  # the Python worker dies: Spark itself fails this task
    return x


@pytest.mark.slow
def test_map_unordered_returns_every_item_once_with_failures(spark_engine):
    assert spark_engine.name == "spark"
    out = list(spark_engine.map_unordered(_fail_on_odd, range(9)))
    assert sorted(item for item, _ in out) == list(range(9))
    for item, outcome in out:
        if item == 7:  # an exception that does not survive pickling comes back as its text
            assert isinstance(outcome, RuntimeError) and "_TwoArgError: item 7: cannot be pickled" in str(outcome)
        elif item % 2:
            assert isinstance(outcome, ValueError) and f"odd item {item}" in str(outcome)
        else:
            assert outcome == item * 10
    crashed = dict(spark_engine.map_unordered(_crash_worker_on_3, range(6)))
    assert sorted(crashed) == list(range(6)) and isinstance(crashed[3], Exception)
    assert "Python worker exited unexpectedly" in str(crashed[3]) and "\tat org.apache" not in str(crashed[3])
    assert all(crashed[i] == i for i in (0, 1, 2, 4, 5))
    assert list(spark_engine.map_unordered(_fail_on_odd, [])) == []
    # results come back as tasks finish (so progress advances), not in submission order
    assert [item for item, _ in spark_engine.map_unordered(_slow_first, range(4))][-1] == 0


def _comparable(path: Path) -> xr.Dataset:
    ds = store.open_dataset(str(path)).load()
    for name in RUN_SPECIFIC_ATTRS:
        ds.attrs.pop(name)
    return ds


@pytest.mark.slow
def test_spark_and_dask_write_the_same_store(tmp_path, spark_cluster):
    src = tmp_path / "src"
    fields = write_archive(src, 10, missing=(4,))
    (src / "radar_202406010100.nc").write_bytes(b"not a radar file")  # quarantined by both engines
    stores = {}
    for name, engine in (
        ("dask", {"name": "dask", "n_workers": 2}),
        ("spark", {"name": "spark", "spark": {"master": spark_cluster.master}}),
    ):
        stores[name] = tmp_path / f"{name}.zarr"
        summary = run_ingest(ingest_config(src, stores[name], engine), progress=False)
        assert summary.ok and summary.counts["ingested"] == 9 and summary.counts["quarantined"] == 1

    spark_ds, dask_ds = _comparable(stores["spark"]), _comparable(stores["dask"])
    xr.testing.assert_identical(spark_ds, dask_ds)  # arrays, coordinates, valid flags and attributes
    a, b = store.open_group(str(stores["spark"])), store.open_group(str(stores["dask"]))
    np.testing.assert_array_equal(a[store.RAIN_RATE][:], b[store.RAIN_RATE][:])  # the stored integers, bit for bit
    valid = a[store.VALID][:]
    assert valid[:10].tolist() == [i in fields for i in range(10)] and not valid[10:].any()

    reader = store.StoreReader(str(stores["spark"]))
    for i, expected in fields.items():
        np.testing.assert_allclose(reader.read(i, i + 1)[0], expected, atol=0.005)

    def statuses(path):
        return {Path(p).name: (r.status, r.index) for p, r in manifest.read_manifest(str(path)).items()}

    assert statuses(stores["spark"]) == statuses(stores["dask"])
    assert "spark" in store.open_group(str(stores["spark"])).attrs["ingest_config"]


def test_py4j_retry_chatter_is_dropped_but_its_warnings_kept():
    """py4j logs its connection retries on the root logger, where its own logger's level has no say."""
    setup_logging()
    handler = logging.getLogger().handlers[0]

    def record(level: int, path: str) -> logging.LogRecord:
        return logging.LogRecord("root", level, path, 1056, "Exception while sending command.", None, None)

    assert not handler.filter(record(logging.INFO, py4j.java_gateway.__file__))
    assert handler.filter(record(logging.WARNING, py4j.java_gateway.__file__))
    assert handler.filter(record(logging.INFO, __file__))
