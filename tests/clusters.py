"""Start and stop real cluster processes on loopback for tests: Spark standalone and Dask.

Every process starts in its own process group and is stopped with its children (Spark
executors, Python workers): terminate, wait, then kill. The context managers stop what they
started even when the test body fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pyspark

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL whatever is left of it (executors, workers)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    proc.wait()


@contextmanager
def process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in a new process group with output to ``log``; stop it at exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc)


def wait_until(
    check, what: str, procs: list[subprocess.Popen], logs: list[Path], timeout: float = START_TIMEOUT_S
) -> None:
    """Poll ``check()`` until true; fail with the logs when a process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            break
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in logs if log.exists())
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s\n{tails}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def _alive_spark_workers(webui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{webui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


@contextmanager
def spark_standalone(work_dir: Path, n_workers: int = 2, memory: str = "1g") -> Iterator[str]:
    """A Spark standalone master and ``n_workers`` one-core workers; yields ``spark://127.0.0.1:P``.

    Started with the pip package's own classes (its ``sbin/`` has no start scripts).
    """
    spark_home = Path(pyspark.__file__).parent
    spark_class = str(spark_home / "bin" / "spark-class")
    env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_LOCAL_IP": LOOPBACK, "PYSPARK_PYTHON": sys.executable}
    work_dir.mkdir(parents=True, exist_ok=True)
    port, webui = free_port(), free_port()
    master = f"spark://{LOOPBACK}:{port}"
    logs = [work_dir / "master.log"] + [work_dir / f"worker{i}.log" for i in range(n_workers)]
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                process(
                    [
                        spark_class,
                        "org.apache.spark.deploy.master.Master",
                        "--host",
                        LOOPBACK,
                        "--port",
                        str(port),
                        "--webui-port",
                        str(webui),
                    ],
                    logs[0],
                    env,
                )
            )
        ]
        wait_until(lambda: port_open(port), f"the Spark master on port {port}", procs, logs)
        for i in range(n_workers):
            procs.append(
                stack.enter_context(
                    process(
                        [
                            spark_class,
                            "org.apache.spark.deploy.worker.Worker",
                            master,
                            "--host",
                            LOOPBACK,
                            "--cores",
                            "1",
                            "--memory",
                            memory,
                            "--webui-port",
                            str(free_port()),
                            "--work-dir",
                            str(work_dir / f"work{i}"),
                        ],
                        logs[i + 1],
                        env,
                    )
                )
            )
        wait_until(
            lambda: _alive_spark_workers(webui) >= n_workers, f"{n_workers} Spark workers registered", procs, logs
        )
        yield master


@contextmanager
def dask_cluster(work_dir: Path, n_workers: int = 2) -> Iterator[str]:
    """A Dask scheduler and ``n_workers`` one-thread workers; yields ``tcp://127.0.0.1:P``."""
    from dask.distributed import Client

    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://{LOOPBACK}:{port}"
    logs = [work_dir / "scheduler.log"] + [work_dir / f"worker{i}.log" for i in range(n_workers)]
    with ExitStack() as stack:
        procs = [
            stack.enter_context(
                process(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_scheduler",
                        "--host",
                        LOOPBACK,
                        "--port",
                        str(port),
                        "--no-dashboard",
                    ],
                    logs[0],
                )
            )
        ]
        wait_until(lambda: port_open(port), f"the Dask scheduler on port {port}", procs, logs)
        for i in range(n_workers):
            procs.append(
                stack.enter_context(
                    process(
                        [
                            sys.executable,
                            "-m",
                            "distributed.cli.dask_worker",
                            address,
                            "--nthreads",
                            "1",
                            "--nworkers",
                            "1",
                            "--no-dashboard",
                            "--host",
                            LOOPBACK,
                            "--local-directory",
                            str(work_dir / f"work{i}"),
                        ],
                        logs[i + 1],
                    )
                )
            )
        with Client(address, timeout="30s") as client:
            wait_until(lambda: len(client.nthreads()) >= n_workers, f"{n_workers} Dask workers registered", procs, logs)
        yield address


@contextmanager
def moto_s3(work_dir: Path, buckets: tuple[str, ...] = ("nowcast",)) -> Iterator[str]:
    """A local S3 server (moto's server mode) on loopback with ``buckets`` made; yields its URL.

    The standard AWS variables point every client started meanwhile (this process, and cluster
    workers started inside the block) at it, with throw-away credentials; they are restored after.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "nowcast-test-key",
        "AWS_SECRET_ACCESS_KEY": "nowcast-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    saved = {key: os.environ.get(key) for key in env}
    log = work_dir / "moto.log"
    cmd = [sys.executable, "-m", "moto.server", "--host", LOOPBACK, "--port", str(port)]
    with process(cmd, log) as proc:
        wait_until(lambda: port_open(port), f"the S3 server on port {port}", [proc], [log])
        os.environ.update(env)
        try:
            import s3fs

            s3fs.S3FileSystem.clear_instance_cache()  # no client made for an earlier endpoint
            fs = s3fs.S3FileSystem()
            for bucket in buckets:
                fs.mkdir(bucket)
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            import s3fs

            s3fs.S3FileSystem.clear_instance_cache()
