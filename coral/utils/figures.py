"""Matplotlib plumbing shared by the PNG and HTML reports: figures on the Agg canvas (no display,
no pyplot state), PNG bytes, and before/after histograms of the most changed tensors."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coral.errors import CoralError
from coral.utils.report_format import similarity_text
from coral.utils.tensor_values import read

if TYPE_CHECKING:
    from matplotlib.figure import Figure, SubFigure

DPI = 110
DIST_TITLE = "Weight distributions of the most changed tensors"


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CoralError(
            "visual diffs need matplotlib",
            hint="pip install 'coral-vcs[viz]' (or use the ASCII output: --ascii)",
        ) from exc


def new_figure(width: float, height: float) -> Figure:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # drawn off screen: no display, no pyplot state
    fig.set_facecolor("white")
    return fig


def save_png(fig: Figure, path: Path | io.BytesIO) -> None:
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")


def png_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    save_png(fig, buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def name_fontsize(text: str, inches: float, largest: float = 9.0) -> float:
    """A font size (points) at which `text` fits in `inches` (never below 5.5)."""
    return max(5.5, min(largest, inches * 72.0 / (0.62 * max(len(text), 1))))


def _sample(arr: np.ndarray, limit: int = 1_000_000) -> np.ndarray:
    flat = arr.reshape(-1)
    if np.iscomplexobj(flat):
        flat = np.abs(flat)
    step = max(1, flat.size // limit)
    x = np.asarray(flat[::step], dtype=np.float64)
    return x[np.isfinite(x)]


def _values_of(weights: Mapping[str, Any], name: str) -> np.ndarray | None:
    if name not in weights:
        return None
    try:
        return read(weights[name])
    except Exception:
        return None


def draw_distributions(
    fig: Figure | SubFigure,
    diff: Mapping[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    width: float,
    limit: int = 4,
) -> None:
    """Before/after value histograms of the `limit` most changed tensors (names whole)."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    chosen = list(diff["most_changed_layers"][:limit])
    if not chosen:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no changed tensors", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    label_a = str(diff.get("model_a_name", "before"))
    label_b = str(diff.get("model_b_name", "after"))
    for ax, ly in zip(axes, chosen, strict=True):
        a = _values_of(before, ly["name"])
        b = _values_of(after, ly["name"])
        xa = _sample(a) if a is not None else np.zeros(0)
        xb = _sample(b) if b is not None else np.zeros(0)
        del a, b
        both = np.concatenate([xa, xb]) if (xa.size or xb.size) else np.zeros(1)
        lo, hi = float(both.min()), float(both.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, 61)
        if xa.size:
            ax.hist(xa, bins=edges, color="#1e88e5", alpha=0.45)
        if xb.size:
            ax.hist(xb, bins=edges, histtype="step", color="#e53935", linewidth=1.6)
        ax.set_title(
            f"{ly['name']}\n{similarity_text(ly)} similar",
            fontsize=name_fontsize(ly["name"], width / len(chosen) - 0.3),
        )
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("value", fontsize=8)
        ax.set_yticks([])
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    fig.legend(
        handles=[
            Patch(facecolor="#1e88e5", alpha=0.45, label=f"before: {label_a}"),
            Patch(facecolor="none", edgecolor="#e53935", linewidth=1.6, label=f"after: {label_b}"),
        ],
        loc="outside lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
    )
