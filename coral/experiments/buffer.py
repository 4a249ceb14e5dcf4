"""`MetricBuffer`: metric points wait in memory and are written to SQLite in batches.

Logging a point is one `deque.append` (thread-safe, no lock). A daemon thread writes what is
pending every `flush_interval` seconds, or sooner once `flush_every` points are waiting; an
explicit `flush()`, the end of an experiment and interpreter exit (atexit) write the rest.
Batches are written in logging order, one transaction each, so after a crash the stored points
of a metric are always a prefix of what was logged. If more than `max_pending` points pile up
(the disk cannot keep up), the logging thread writes them itself: memory stays bounded.
"""

from __future__ import annotations

import atexit
import os
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Sequence

from coral.experiments.store import ExperimentStore, PendingPoint

BatchListener = Callable[[Sequence[PendingPoint]], None]

_LIVE: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()


class MetricBuffer:
    """Pending metric points of one process, and the thread that writes them."""

    def __init__(
        self,
        store: ExperimentStore,
        flush_every: int = 1000,
        flush_interval: float = 1.0,
        max_pending: int = 200_000,
    ) -> None:
        if flush_every < 1 or max_pending < flush_every:
            raise ValueError("need 1 <= flush_every <= max_pending")
        self.store = store
        self.flush_every = int(flush_every)
        self.flush_interval = float(flush_interval)
        self.max_pending = int(max_pending)
        self.queue: deque[PendingPoint] = deque()
        self.listeners: list[BatchListener] = []
        self.last_error: BaseException | None = None
        self.points_written = 0
        self._init_process_state()
        _LIVE.add(self)

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the hot path helpers -------------------------------------------------------------------
    def kick(self) -> None:
        """Called by the logger once `flush_every` points wait: wake the writer (or write now)."""
        if self._pid != os.getpid():
            self._after_fork()
        if len(self.queue) >= self.max_pending:
            self.flush()
            return
        if self._thread is None:
            self.start()
        if not self._wake.is_set():
            self._wake.set()

    # -- writing ---------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write every pending point now (in this thread); returns how many were written."""
        if self._pid != os.getpid():
            self._after_fork()
        written = 0
        with self._flush_lock:
            while self.queue:
                n = min(len(self.queue), 50_000)
                popleft = self.queue.popleft
                batch = [popleft() for _ in range(n)]
                try:
                    self.store.insert_metrics(batch)
                except BaseException as exc:
                    self.queue.extendleft(reversed(batch))  # keep them for the next try
                    self.last_error = exc
                    raise
                written += n
                self.points_written += n
                for listener in list(self.listeners):
                    try:
                        listener(batch)
                    except Exception as exc:  # a mirror must never break training
                        warnings.warn(
                            f"coral: metric mirror failed: {exc!r}", RuntimeWarning, stacklevel=2
                        )
        return written

    def start(self) -> None:
        """Start the background writer (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="coral-experiment-writer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the background writer and write what is pending."""
        if self._pid != os.getpid():
            self._after_fork()
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)
        self._thread = None
        self._wake.clear()
        self.flush()

    def _run(self) -> None:
        warned = False
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
                warned = False
            except Exception as exc:  # retried on the next round; points stay queued
                if not warned:
                    warnings.warn(
                        f"coral: could not write metrics yet ({exc!r}); will retry",
                        RuntimeWarning,
                        stacklevel=1,
                    )
                    warned = True

    def _after_fork(self) -> None:
        """In a forked child: the parent's pending points are the parent's to write."""
        self.queue.clear()
        self.store.reset_after_fork()
        self._init_process_state()


def flush_all() -> None:
    """Write every pending point of every buffer of this process (registered with atexit)."""
    for buffer in list(_LIVE):
        if buffer._pid != os.getpid():
            continue
        try:
            buffer.stop()
        except Exception as exc:
            warnings.warn(
                f"coral: could not write pending metrics at exit: {exc!r}",
                RuntimeWarning,
                stacklevel=1,
            )


def _reset_after_fork() -> None:
    for buffer in list(_LIVE):
        buffer._after_fork()


atexit.register(flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
