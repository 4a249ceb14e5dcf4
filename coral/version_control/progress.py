"""Progress of long repository operations (gc, fsck), told to a callback: no UI in here.

`progress(phase, done, total)` is called when a phase starts (done=0), after each step, and when
it ends (done == total). `phase` is a short description ("tracing history", "verifying
chunks"); `total` is None while unknown. The CLI turns these calls into rich progress bars.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, "int | None"], None]


class Phase:
    """One phase of work: counts steps and reports them to `progress` (a no-op without one)."""

    def __init__(self, progress: Progress | None, name: str, total: int | None = None) -> None:
        self.progress = progress
        self.name = name
        self.total = total
        self.done = 0
        self._report()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._report()

    def finish(self) -> None:
        """The phase is complete: its total becomes what was done (if it was less or unknown)."""
        if self.total is None or self.done < self.total:
            self.total = self.done
        self.done = self.total
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.name, self.done, self.total)
