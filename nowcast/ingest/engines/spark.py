"""The Spark engine: chunk jobs as an RDD, each task reads its files and writes its chunk itself.

The driver only lists files and plans jobs (``run.py``); here the list of jobs becomes an RDD
with one partition per job, and each task runs ``fn(job)`` in a Python worker that reads from
the shared file system and writes straight to the store. Only small results (manifest records)
come back to the driver; file bytes never go through the JVM or the driver.

Results arrive as tasks finish: every partition is its own small Spark job, a few of them in
flight at once (``toLocalIterator`` would run the partitions one after another, and one
``collect`` would report nothing until the last task ends). A task catches its own exception
and returns it, so one failing chunk never fails the others.

Before anything starts, ``open_spark`` checks what makes Spark fail late and obscurely: a
missing or too old Java, and a ``spark://`` master that cannot be reached.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nowcast.errors import ConfigError
from nowcast.ingest.config import EngineConfig, SparkConfig

log = logging.getLogger(__name__)

MIN_JAVA = 17  # pyspark 4 runs on Java 17 or newer
JAVA_HINT = (
    "install Java 17 or newer (e.g. `apt-get install openjdk-17-jre-headless`) and set JAVA_HOME "
    "to it (or put its `java` on the PATH)"
)
CONNECT_TIMEOUT_S = 3.0
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class _Guarded:
    """Picklable task body: ``(index, job) -> (index, result or the exception it raised)``."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, pairs: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        for index, item in pairs:
            try:
                yield index, self.fn(item)
            except Exception as e:  # noqa: BLE001 - handed back to the driver, as every engine does
                yield index, _picklable(e)


def _picklable(error: Exception) -> Exception:
    """The exception itself when it survives a pickle round trip, else a RuntimeError that says it."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - some exception classes cannot be rebuilt from their args
        return RuntimeError(f"{type(error).__name__}: {error}")


def _task_failure(error: Exception) -> Exception:
    """Spark's own failure of a task (not the task's exception), as one line instead of a JVM trace."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = next((line for line in lines if "Job aborted" in line), lines[0] if lines else type(error).__name__)
    reason = reason.split("Job aborted due to stage failure: ")[-1]
    failure = RuntimeError(f"Spark task failed: {reason[:1000]}")
    failure.__cause__ = error
    return failure


class SparkEngine:
    name = "spark"

    def __init__(self, sc):
        self.sc = sc

    def _in_flight(self) -> int:
        # enough queued single-task jobs to keep every core busy while the driver handles results
        return max(4, 2 * self.sc.defaultParallelism)

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        items = list(items)
        if not items:
            return
        rdd = self.sc.parallelize(list(enumerate(items)), numSlices=len(items))
        guarded = _Guarded(fn)

        def run_partition(part: int) -> list[tuple[int, Any]]:
            return self.sc.runJob(rdd, guarded, partitions=[part])

        pending = iter(range(len(items)))
        running: dict[Future, int] = {}
        in_flight = min(self._in_flight(), len(items))
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="nowcast-spark") as pool:
            try:
                for part in itertools.islice(pending, in_flight):
                    running[pool.submit(run_partition, part)] = part
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        part = running.pop(future)
                        try:
                            ((index, outcome),) = future.result()
                        except Exception as e:  # noqa: BLE001 - a lost executor, a worker that died, ...
                            index, outcome = part, _task_failure(e)
                        yield items[index], outcome
                        nxt = next(pending, None)
                        if nxt is not None:
                            running[pool.submit(run_partition, nxt)] = nxt
            finally:
                if running:  # the caller stopped early: do not leave tasks writing behind its back
                    for future in running:
                        future.cancel()
                    self.sc.cancelAllJobs()


def java_executable() -> Path:
    """The ``java`` that Spark's launcher will run: ``$JAVA_HOME/bin/java``, else the one on the PATH.

    Raises:
        ConfigError: no Java found.
    """
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not java.is_file():
            raise ConfigError(f"engine.name=spark: JAVA_HOME is {home}, but {java} does not exist; {JAVA_HINT}")
        return java
    found = shutil.which("java")
    if found is None:
        raise ConfigError(
            f"engine.name=spark: Spark needs Java, and there is no `java` on the PATH and no JAVA_HOME; {JAVA_HINT}"
        )
    return Path(found)


def java_major_version(java: Path) -> int:
    """Major version of ``java -version`` ("1.8.0_392" is 8, "17.0.15" is 17).

    Raises:
        ConfigError: the program does not run or its version cannot be read.
    """
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"engine.name=spark: cannot run {java} -version ({e}); {JAVA_HINT}") from e
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if out.returncode != 0 or match is None:
        raise ConfigError(
            f"engine.name=spark: {java} -version did not report a version ({text.strip()[:200]!r}); {JAVA_HINT}"
        )
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return minor if major == 1 else major


def check_java() -> None:
    """Stop early, with the fix, when Spark's JVM could not start.

    Raises:
        ConfigError: Java is missing or older than 17.
    """
    java = java_executable()
    version = java_major_version(java)
    if version < MIN_JAVA:
        raise ConfigError(
            f"engine.name=spark: {java} is Java {version}, but pyspark 4 needs Java {MIN_JAVA}+; {JAVA_HINT}"
        )


def standalone_masters(master: str) -> list[tuple[str, int]]:
    """``(host, port)`` of each master in a ``spark://h1:p1[,h2:p2]`` URL (port 7077 by default)."""
    out = []
    for part in master.removeprefix("spark://").split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "7077")
        try:
            out.append((host.strip("[]"), int(port)))
        except ValueError:
            raise ConfigError(f"engine.spark.master: {master!r} is not of the form spark://host:port") from None
    return out


def check_master(master: str) -> None:
    """For a ``spark://`` master, check that one of its masters accepts connections.

    Raises:
        ConfigError: no master answers (names the URL and what to check).
    """
    if not master.startswith("spark://"):
        return
    errors = []
    for host, port in standalone_masters(master):
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                return
        except OSError as e:
            errors.append(f"{host}:{port}: {e}")
    raise ConfigError(
        f"engine.spark.master: cannot reach the Spark master at {master} ({'; '.join(errors)}); "
        "check that the master runs there (spark-class org.apache.spark.deploy.master.Master), "
        "that host and port match its log line 'Starting Spark master at spark://...', "
        "and that no firewall blocks the port"
    )


def _is_local(master: str) -> bool:
    if master.startswith("local"):
        return True
    return master.startswith("spark://") and all(
        h in LOOPBACK or h.startswith("127.") for h, _ in standalone_masters(master)
    )


def spark_conf(config: SparkConfig) -> dict[str, str]:
    """The SparkSession settings for ``config``; ``config.conf`` overrides every default here."""
    conf = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",  # run.py draws its own progress bar
        "spark.pyspark.python": sys.executable,  # workers run this interpreter, not `python3` on the PATH
        "spark.pyspark.driver.python": sys.executable,
        "spark.python.worker.reuse": "true",
    }
    if _is_local(config.master):  # executors on this machine: keep the driver off other interfaces
        conf["spark.driver.host"] = "127.0.0.1"
    if config.executor_memory:
        conf["spark.executor.memory"] = config.executor_memory
    if config.executor_cores:
        conf["spark.executor.cores"] = str(config.executor_cores)
    return {**conf, **config.conf}


@contextmanager
def _environ(values: dict[str, str]):
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def open_spark(config: EngineConfig):
    """A Spark engine on ``config.spark.master``; the session is stopped at exit if we started it.

    A SparkContext already running in this process on the same master is reused (and left
    running), so that tests and notebooks pay Spark's start-up once.

    Raises:
        ConfigError: Java is missing or too old, the master cannot be reached, or another
            SparkSession on a different master is active in this process.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    master = config.spark.master
    check_java()
    check_master(master)
    active = SparkContext._active_spark_context  # one per process, whichever thread made it
    if active is not None:
        running = active.master
        if running != master:
            raise ConfigError(
                f"engine.spark.master: a SparkSession on {running} is already running in this "
                f"process; stop it before ingesting on {master}"
            )
        log.info("spark: reusing the active session on %s", master)
        yield SparkEngine(active)
        return

    conf = spark_conf(config.spark)
    builder = SparkSession.builder.master(master).appName("nowcast-ingest")
    for key, value in conf.items():
        builder = builder.config(key, value)
    # the context reads the worker interpreter from the environment once, at start
    env = {"PYSPARK_PYTHON": conf["spark.pyspark.python"]}
    if conf.get("spark.driver.host") == "127.0.0.1":
        env["SPARK_LOCAL_IP"] = "127.0.0.1"  # and the JVM would warn about a loopback hostname
    with _environ(env):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    log.info("spark: session on %s (default parallelism %d)", master, spark.sparkContext.defaultParallelism)
    try:
        yield SparkEngine(spark.sparkContext)
    finally:
        spark.stop()
