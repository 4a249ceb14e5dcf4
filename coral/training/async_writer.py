"""`BackgroundWriter`: runs checkpoint commits on one background thread behind a bounded queue.

`submit` blocks only while the queue is full (back-pressure instead of unbounded memory). A job
that fails does not stop the thread; its exception is kept and re-raised, wrapped in
`BackgroundCommitError`, by the next `submit`, `check`, `wait` or `close` — never swallowed.
Jobs still queued when the interpreter exits are drained first (atexit).
"""

from __future__ import annotations

import atexit
import os
import queue
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from coral.errors import CoralError

_STOP = object()
_LIVE: weakref.WeakSet[BackgroundWriter] = weakref.WeakSet()


class BackgroundCommitError(CoralError):
    """A checkpoint that was committing in the background failed; `__cause__` is the original."""

    default_hint = "the run's earlier checkpoints are intact; fix the cause and save again"


class BackgroundWriter:
    """One worker thread executing submitted callables in order."""

    def __init__(
        self, max_queue: int = 2, name: str = "coral-checkpoint-writer", nice: int = 0
    ) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._errors: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._nice = nice
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def _run(self) -> None:
        if self._nice > 0:
            _lower_thread_priority(self._nice)
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                label, job = item
                try:
                    job()
                except BaseException as exc:  # kept for the caller, never swallowed
                    with self._lock:
                        self._errors.append((label, exc))
            finally:
                self._queue.task_done()

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return self._queue.unfinished_tasks

    def check(self) -> None:
        """Raise the first error a finished job left (and forget it)."""
        with self._lock:
            if not self._errors:
                return
            label, exc = self._errors.pop(0)
            more = len(self._errors)
            self._errors.clear()
        extra = f" (and {more} more)" if more else ""
        raise BackgroundCommitError(
            f"background checkpoint {label} failed: {type(exc).__name__}: {exc}{extra}"
        ) from exc

    def submit(self, job: Callable[[], None], label: str = "") -> None:
        """Queue `job` (blocks while the queue is full); raises a pending error first."""
        self.check()
        if self._closed:
            raise CoralError(
                "the checkpoint writer is closed", hint="create a new CheckpointManager"
            )
        self._queue.put((label, job))

    def wait(self) -> None:
        """Block until every queued job has run, then raise any error they left."""
        self._queue.join()
        self.check()

    def close(self) -> None:
        """Drain the queue, stop the thread, raise any error left."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
            _LIVE.discard(self)
        self.check()


def _lower_thread_priority(nice: int) -> None:
    """Make the calling thread (and the threads it starts, e.g. the store's compression pool)
    yield the CPU to training threads. Linux schedules threads individually; elsewhere a no-op."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        pass


@atexit.register
def _drain_at_exit() -> None:
    for writer in list(_LIVE):
        try:
            writer.close()
        except Exception as exc:  # the interpreter is exiting: report, do not raise
            print(f"coral: {exc}", file=sys.stderr)
