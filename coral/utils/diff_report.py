"""Visual model diffs (roadmap item 1), one import away: terminal charts, PNG and HTML reports
and the storage-savings chart.

Each renderer takes the dictionary of `coral.utils.visualization.compare_models` (or of
`coral.utils.comparison.comparison_of_diff` for two commits) and lives in a module of its own:
`ascii_report` (standard library only), `heatmap` (PNG), `html_report` and `savings_chart`
(matplotlib's Agg canvas; a `CoralError` with an install hint when matplotlib is missing).
"""

from __future__ import annotations

from coral.utils.ascii_report import render_diff_ascii
from coral.utils.heatmap import render_diff_png
from coral.utils.html_report import render_diff_html
from coral.utils.report_format import human_bytes
from coral.utils.savings_chart import render_savings_chart

__all__ = [
    "human_bytes",
    "render_diff_ascii",
    "render_diff_html",
    "render_diff_png",
    "render_savings_chart",
]
