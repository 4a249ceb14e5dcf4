"""`BackgroundRepack`: runs a store's repack in a thread after commits, once at a time.

A request made while a repack runs makes it run again afterwards, so packs written meanwhile
are repacked too. The thread is not a daemon: the interpreter waits for it at exit, so the
work of a short-lived process (a CLI commit) is not lost; a kill at any moment is safe anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class BackgroundRepack:
    """Schedules `work` on a background thread; `wait()` blocks until none is pending."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.work = work
        self.error: BaseException | None = None  # the last failure (costs space, not data)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._requested = False
        self._running = False

    def schedule(self) -> None:
        with self._lock:
            self._requested = True
            if self._running:
                return
            self._running = True
            self._thread = threading.Thread(target=self._run, name="coral-repack", daemon=False)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._requested:
                    self._running = False
                    return
                self._requested = False
            try:
                self.work()
            except BaseException as exc:  # kept for inspection; the next run starts afresh
                self.error = exc

    def wait(self) -> None:
        while True:
            thread = self._thread
            if thread is None or thread is threading.current_thread():
                return
            thread.join()
            with self._lock:
                if self._thread is thread and not self._running:
                    self._thread = None
