"""`EncodePool`: where a store's chunk work runs — this machine's threads, or a Dask cluster.

The store hands a pool two kinds of work. `submit` / `map` take closures over the store
(reading records, writing into an output buffer) and always run them on local threads. `run`
takes a pure task — a top-level function of bytes, arrays and settings, such as
`chunk_encoder.encode_best` or `chunk_tasks.decode_records` — and runs it where the pool runs
its tasks: in the calling thread (`EncodePool`, the default) or as a Dask task on a worker of
the scheduler the settings name (`DaskPool`). The functions are the same either way, so the
bytes on disk are too. `DaskPool` waits for a task as long as the cluster has a worker; a
worker that dies takes its task to another one (the scheduler's retry), a cluster left with
no worker for `timeout` seconds fails the operation with a `ClusterError`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from coral.storage.cluster import ClusterError, ClusterSettings

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
_POLL_SECONDS = 0.5  # how often a waiting task looks whether the cluster still has workers


class EncodePool:
    """Local threads: `submit` / `map` for closures, `run` for pure tasks (in the caller)."""

    remote = False
    address: str | None = None

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)  # tasks at once: the store keeps twice as many in flight
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="coral-store")

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Run `fn(*args)` on a local thread."""
        return self._executor.submit(fn, *args)

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any]) -> Iterator[T]:
        """`fn` over the iterables on local threads; results in order."""
        return self._executor.map(fn, *iterables)

    def run(self, task: Callable[..., T], /, *args: Any) -> T:
        """Run a pure task and return its result (here: in the calling thread, which is
        already one of the pool's when the store calls this)."""
        return task(*args)

    def describe(self) -> str:
        return f"{self.workers} local thread{'s' if self.workers != 1 else ''}"

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


class DaskPool(EncodePool):
    """Pure tasks on the workers of a Dask scheduler; enough local threads to keep every
    worker thread of the cluster busy."""

    remote = True

    def __init__(self, settings: ClusterSettings, workers: int) -> None:
        if settings.scheduler is None:
            raise ValueError("DaskPool needs a scheduler address")
        self.settings = settings
        self.address = settings.scheduler
        self.client = _connect(settings)
        super().__init__(max(workers, self.threads()))

    def threads(self) -> int:
        """Worker threads the cluster has now."""
        return sum(self._nthreads().values())

    def _nthreads(self) -> dict[str, int]:
        try:
            return dict(self.client.nthreads())
        except (OSError, CancelledError, TimeoutError) as exc:
            raise self._lost(exc) from None

    def run(self, task: Callable[..., T], /, *args: Any) -> T:
        """Run `task(*args)` as a Dask task and wait for it (`retries` more tries if it raises;
        ClusterError when the cluster has had no worker for `timeout` seconds)."""
        try:
            future = self.client.submit(task, *args, pure=False, retries=self.settings.retries)
        except (OSError, CancelledError, RuntimeError, TimeoutError) as exc:  # client closed
            raise self._lost(exc) from None
        try:
            result: T = self._wait(future, getattr(task, "__name__", "task"))
        finally:
            # Releasing is enough for the scheduler to forget a task nobody wants; `cancel()`
            # would wait on the client's event loop, forever once `shutdown` has closed it.
            future.release()
        return result

    def _wait(self, future: Any, name: str) -> Any:
        from distributed import KilledWorker

        idle_since: float | None = None
        while True:
            try:
                return future.result(timeout=_POLL_SECONDS)
            except TimeoutError:
                pass
            except KilledWorker:
                raise ClusterError(
                    f"Dask workers of {self.address} kept dying while running {name}",
                    hint="check the workers' memory limits and logs; nothing was recorded, "
                    "run the command again",
                ) from None
            except (CancelledError, OSError) as exc:
                raise self._lost(exc) from None
            if self._nthreads():
                idle_since = None
                continue
            now = time.monotonic()
            idle_since = idle_since or now
            if now - idle_since >= self.settings.timeout:
                raise ClusterError(
                    f"the Dask cluster at {self.address} has no workers "
                    f"(waited {self.settings.timeout:g}s)",
                    hint=f"start some with `dask worker {self.address}`; nothing was recorded",
                )

    def _lost(self, exc: BaseException) -> ClusterError:
        return ClusterError(
            f"lost the connection to Dask scheduler {self.address} ({_reason(exc)})"
        )

    def describe(self) -> str:
        n = self._nthreads()
        if not n:
            wait = self.settings.timeout
            return f"Dask scheduler {self.address} (no workers yet: waiting {wait:g}s for one)"
        return (
            f"Dask scheduler {self.address} ({len(n)} worker{'s' if len(n) != 1 else ''}, "
            f"{sum(n.values())} thread{'s' if sum(n.values()) != 1 else ''})"
        )

    def shutdown(self) -> None:
        """Let the local threads finish (each waits at most `timeout` for its task), then
        close the client."""
        super().shutdown()
        with contextlib.suppress(OSError, TimeoutError, CancelledError):  # a lost scheduler
            self.client.close(timeout=self.settings.timeout)


def _connect(settings: ClusterSettings) -> Client:
    try:
        import dask
        from distributed import Client
    except ImportError:
        raise ClusterError(
            "Dask is not installed, so there is no encoding on a cluster",
            hint="pip install 'coral-vcs[cluster]' (dask[distributed]), or drop --cluster",
        ) from None
    _quiet_dask_logs()
    # a task carries its chunk (and reference) in the graph, so that the scheduler can send it
    # again to another worker when one dies; chunks are a few MiB, up to 1 GiB by config
    dask.config.set({"distributed.admin.large-graph-warning-threshold": "4GiB"})
    try:
        _probe(settings)
        return Client(settings.scheduler, timeout=settings.timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach Dask scheduler {settings.scheduler} ({_reason(exc)})",
            hint="start one with `dask scheduler` (and workers with `dask worker ADDRESS`), "
            "or encode on this machine: `--cluster local`",
        ) from None


def _quiet_dask_logs() -> None:
    """Coral reports a failing cluster itself, once: not Dask's client-side log lines."""
    for name in ("distributed", "distributed.client", "tornado", "tornado.application"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _probe(settings: ClusterSettings) -> None:
    """Fail at once when nothing listens (Dask itself retries until its timeout)."""
    parts = urlsplit(settings.scheduler or "")
    if parts.scheme in ("tcp", "tls", "ws", "wss") and parts.hostname and parts.port:
        socket.create_connection((parts.hostname, parts.port), timeout=settings.timeout).close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__


def open_pool(settings: ClusterSettings, workers: int) -> EncodePool:
    """The pool `settings` name: a `DaskPool` (connected now) or local threads."""
    if settings.scheduler is None:
        return EncodePool(workers)
    return DaskPool(settings, workers)
