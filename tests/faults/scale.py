"""How big a fault run is: `CORAL_FAULT_SCALE` (default 1, a quick run of a few seconds)
multiplies the number of trials of every fault test (`CORAL_FAULT_SCALE=50` for a long run)."""

from __future__ import annotations

import os


def scale() -> int:
    """The factor from CORAL_FAULT_SCALE (at least 1)."""
    try:
        return max(1, int(os.environ.get("CORAL_FAULT_SCALE", "1")))
    except ValueError:
        return 1


def trials(n: int) -> int:
    """`n` trials at scale 1, `n * scale()` in a longer run."""
    return n * scale()
