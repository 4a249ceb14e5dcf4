"""Numbers and change counts for people: the words every report (CLI, CI, web) uses for the
diff engine's categories, and the one short number format."""

from __future__ import annotations

import math
from collections.abc import Mapping

ENGINE_LABELS: dict[str, str] = {
    "identical": "identical",
    "changed": "changed",
    "shape_changed": "shape changed",
    "added": "added",
    "removed": "removed",
}
# The order counts are printed in: what changed first.
COUNT_ORDER: tuple[str, ...] = ("changed", "shape_changed", "added", "removed", "identical")


def num(x: float | None) -> str:
    """3 significant digits; '-' for a missing value."""
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if math.isnan(x):
        return "nan"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def counts_text(counts: Mapping[str, int]) -> str:
    """The engine's counts: '32 changed, 0 added, 0 removed, 72 identical' (shape changes
    are named only when there are some)."""
    return ", ".join(
        f"{counts.get(k, 0)} {ENGINE_LABELS[k]}"
        for k in COUNT_ORDER
        if k != "shape_changed" or counts.get(k)
    )
