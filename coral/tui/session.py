"""The repository a browser shows, and running its reads off the UI thread.

Every read goes through `start_job`: the work runs in a thread worker while the lock is held
(one repository, one reader at a time), its result comes back on the UI thread, and an error is
shown as a notification (`error: ...` / `hint: ...`) instead of ending the app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from textual.widget import Widget
from textual.worker import Worker, get_current_worker

from coral.errors import CoralError
from coral.version_control.repository import Repository

T = TypeVar("T")
FIRST_PAGE = 60  # commits read before the first paint: more than a tall terminal shows
PAGE = 400  # commits read each time the cursor nears the end of what is loaded


class Cancelled(Exception):
    """Raised inside a job (from a progress callback) once its worker was cancelled."""


@dataclass
class Session:
    """The open repository, the lock its readers share, and the log's page sizes."""

    repo: Repository
    first_page: int = FIRST_PAGE
    page: int = PAGE
    lock: threading.RLock = field(default_factory=threading.RLock)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(repo, *args, **kwargs)` with the lock held."""
        with self.lock:
            return fn(self.repo, *args, **kwargs)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, CoralError):
        return f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else "")
    return f"error: {type(exc).__name__}: {exc}"


def check_cancelled() -> None:
    """Raise Cancelled when the running worker was cancelled (call it from progress hooks)."""
    if get_current_worker().is_cancelled:
        raise Cancelled


def start_job(
    widget: Widget,
    work: Callable[[], T],
    done: Callable[[T], None],
    *,
    group: str,
    exclusive: bool = True,
    failed: Callable[[BaseException], None] | None = None,
) -> Worker[None]:
    """Run `work()` in a thread; `done(result)` then runs on the UI thread unless the worker
    was cancelled; an exception goes to `failed` (default: an error notification)."""
    app = widget.app

    def report(exc: BaseException) -> None:
        if failed is not None:
            failed(exc)
        else:
            app.notify(describe_error(exc), severity="error", timeout=8)

    def job() -> None:
        try:
            result = work()
        except Cancelled:
            return
        except Exception as exc:
            _back(app, report, exc)
            return
        if not get_current_worker().is_cancelled:
            _back(app, done, result)

    worker: Worker[None] = widget.run_worker(
        job, thread=True, group=group, exclusive=exclusive, exit_on_error=False
    )
    return worker


def _back(app: Any, fn: Callable[[Any], None], value: Any) -> None:
    """`fn(value)` on the UI thread; nothing once the app has stopped."""
    with suppress(RuntimeError):  # the app exited while the job ran
        app.call_from_thread(fn, value)
