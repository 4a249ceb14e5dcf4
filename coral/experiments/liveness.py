"""Which running experiments still have a live process, and ending them when it crashes.

Each tracker registers itself here. An experiment is *orphaned* when it is RUNNING but the
process that owns it (on this host) is gone, or is this process while no tracker here runs it;
`resume` marks such an original FAILED. An uncaught exception ends this process's running
experiments as FAILED (CANCELLED on Ctrl-C) before the previous `sys.excepthook` runs.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import weakref
from typing import Any, Protocol

from coral.experiments.types import Experiment

HOST = socket.gethostname()


class LiveTracker(Protocol):
    """What this module needs from a tracker (`ExperimentTracker`)."""

    @property
    def current_id(self) -> str | None: ...

    def fail(self, error_message: str | None = None, commit_hash: str | None = None) -> Any: ...

    def cancel(self, reason: str | None = None) -> Any: ...


_TRACKERS: weakref.WeakKeyDictionary[LiveTracker, int] = weakref.WeakKeyDictionary()
_hook_lock = threading.Lock()
_hook_installed = False


def register(tracker: LiveTracker) -> None:
    """Track `tracker` as owned by this process (a forked child does not end its experiments)."""
    _TRACKERS[tracker] = os.getpid()
    _install_excepthook()


def is_orphaned(experiment: Experiment) -> bool:
    """Whether the process that owns `experiment` (on this host) is gone."""
    if experiment.pid is None or experiment.host != HOST:
        return False
    if experiment.pid == os.getpid():
        return not any(t.current_id == experiment.experiment_id for t in list(_TRACKERS))
    return not pid_alive(experiment.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) counts as gone
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _install_excepthook() -> None:
    global _hook_installed
    with _hook_lock:
        if _hook_installed:
            return
        previous = sys.excepthook

        def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
            for tracker, owner in list(_TRACKERS.items()):
                if tracker.current_id is None or owner != os.getpid():
                    continue
                try:
                    if issubclass(exc_type, KeyboardInterrupt):
                        tracker.cancel("interrupted (KeyboardInterrupt)")
                    else:
                        tracker.fail(f"{exc_type.__name__}: {exc}")
                except Exception:
                    pass
            previous(exc_type, exc, tb)

        sys.excepthook = hook
        _hook_installed = True
