"""A real Dask scheduler and workers on 127.0.0.1 for tests, as a context manager.

Workers run without a nanny (`--no-nanny`), one thread each, so that killing a worker's
process (SIGKILL) is a worker that dies, not one that a nanny restarts.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers.process import ManagedProcess, free_port, port_open, unavailable


@dataclass
class DaskCluster:
    """A running scheduler (`address`) and its worker processes."""

    address: str
    base: Path
    workers: list[ManagedProcess] = field(default_factory=list)

    def add_worker(self, timeout: float = 60) -> ManagedProcess:
        """Start one more worker and wait until the scheduler counts it."""
        n = len(self.workers)
        want = self.alive() + 1
        worker = ManagedProcess(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                self.address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--memory-limit",
                "0",
                "--name",
                f"w{n}",
                "--local-directory",
                str(self.base / f"w{n}"),
                "--host",
                "127.0.0.1",
            ],
            log_path=self.base / f"worker{n}.log",
            env=_env(),
        )
        self.workers.append(worker)
        worker.wait_until(lambda: self.worker_count() >= want, timeout, "dask worker")
        return worker

    def alive(self) -> int:
        return sum(w.proc.poll() is None for w in self.workers)

    def kill(self, worker: ManagedProcess) -> None:
        """SIGKILL a worker's process (no goodbye to the scheduler) and reap it."""
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)

    def kill_all(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                self.kill(worker)

    def worker_count(self) -> int:
        """Workers the scheduler knows now."""
        with _client(self.address) as client:
            return len(client.nthreads())

    def task_counts(self) -> dict[str, int]:
        """Tasks the scheduler has finished, by function name (`encode_full`, ...)."""
        with _client(self.address) as client:
            return dict(client.run_on_scheduler(_finished_by_prefix))


def _finished_by_prefix(dask_scheduler: Any) -> dict[str, int]:
    return {
        name: int(prefix.state_counts.get("memory", 0))
        for name, prefix in dask_scheduler.task_prefixes.items()
    }


@contextmanager
def _client(address: str) -> Iterator[Any]:
    from distributed import Client

    client = Client(address, timeout=10, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CORAL_DASK_SCHEDULER", None)
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    root = str(Path(__file__).resolve().parents[2])  # the workers import this Coral
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


@contextmanager
def dask_cluster(workers: int = 2, timeout: float = 60) -> Iterator[DaskCluster]:
    """Start `dask scheduler` on a free loopback port and `workers` workers; yields the
    cluster (its `address` is what `--cluster` takes); stops them all."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        unavailable("dask[distributed] is not installed; `make test` installs the cluster extra")
    with tempfile.TemporaryDirectory(prefix="coral-dask-") as tmp:
        base = Path(tmp)
        port = free_port()
        scheduler = ManagedProcess(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
            ],
            log_path=base / "scheduler.log",
            env=_env(),
        )
        cluster = DaskCluster(f"tcp://127.0.0.1:{port}", base)
        try:
            scheduler.wait_until(lambda: port_open(port), timeout, "dask scheduler")
            for _ in range(workers):
                cluster.add_worker(timeout)
            yield cluster
        finally:
            for worker in cluster.workers:
                worker.stop()
            scheduler.stop()
