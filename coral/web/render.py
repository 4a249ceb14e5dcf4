"""Turning results into responses: the Jinja templates (autoescaped) with the filters and URL
helpers every page shares, and JSON with non-finite floats spelled out as `coral --json` does."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from coral import __version__
from coral.core.units import human_bytes
from coral.utils.report_format import CATEGORY_COLORS, CATEGORY_LABELS, num, pct
from coral.web import links

TEMPLATES = Path(__file__).parent / "templates"


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


def ago(ts: float | None) -> str:
    if ts is None:
        return ""
    s = max(0.0, time.time() - ts)
    for unit, size in (("day", 86400), ("hour", 3600), ("min", 60)):
        if s >= size:
            n = int(s // size)
            return f"{n} {unit}{'s' if n != 1 and unit != 'min' else ''} ago"
    return "just now"


def first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def refname(ref: str) -> str:
    """A ref as typed, a full hash cut to the 10 characters every view prints."""
    is_hash = len(ref) >= 40 and all(c in "0123456789abcdef" for c in ref)
    return ref[:10] if is_hash else ref


def shape(dims: Any) -> str:
    dims = list(dims or [])
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def metric(value: Any) -> str:
    if isinstance(value, float):
        return num(value) if math.isfinite(value) else str(value)
    return str(value)


def url(path: str, **params: Any) -> str:
    """`path` with the query parameters that are set (lists repeat the key)."""
    pairs = []
    for key, value in params.items():
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None and v != "" and v is not False:
                pairs.append((key, "1" if v is True else str(v)))
    return path + ("?" + urlencode(pairs) if pairs else "")


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        short=lambda h: (h or "")[:10],
        bytes=human_bytes,
        when=when,
        ago=ago,
        first_line=first_line,
        refname=refname,
        shape=shape,
        metric=metric,
        num=num,
        pct=pct,
        quote=lambda s: quote(str(s), safe=""),
    )
    env.globals.update(
        url=url,
        commit_url=links.commit_path,
        diff_url=links.diff_path,
        tensor_url=links.tensor_path,
        category_colors=CATEGORY_COLORS,
        category_labels=CATEGORY_LABELS,
        version=__version__,
    )
    return env


ENV = _env()


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page; `context` plus the request, the repository's name and the nav item."""
    state = getattr(request.app.state, "dashboard", None)
    repo_name = state.repo.path.name if state is not None else ""
    html = ENV.get_template(template).render(request=request, repo_name=repo_name, **context)
    return HTMLResponse(html, status_code=status)


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


class StrictJSON(Response):
    """JSON that strict parsers read: NaN and infinities become "NaN" / "Infinity" strings."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(_strict(content), allow_nan=False, default=str).encode("utf-8")
