"""Ref names and ref expressions: validation (`check_name`) and parsing of `main~2^2` syntax."""

from __future__ import annotations

import re
from dataclasses import dataclass

from coral.errors import InvalidNameError, RefNotFoundError

_FORBIDDEN_CHARS = set("~^:?*[\\ ")
_SUFFIX = re.compile(r"(~\d*|\^\d*)")
HEAD = "HEAD"


def check_name(name: str, kind: str = "branch") -> str:
    """Return `name` if it is a valid branch or tag name, else raise InvalidNameError.

    Rules (git's, slightly stricter): non-empty; no "..", "//" or "@{"; no leading "/", "-" or
    "."; no trailing "/", "." or ".lock"; no component starting with "."; no control
    characters or whitespace; none of ~ ^ : ? * [ \\; not "HEAD" or "@".
    """
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{kind} name must be a non-empty string")
    reason = _name_problem(name)
    if reason:
        raise InvalidNameError(f"invalid {kind} name {name!r}: {reason}")
    return name


def _name_problem(name: str) -> str | None:
    if name in (HEAD, "@"):
        return f"{name!r} is reserved"
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c.isspace() for c in name):
        return "contains a control character or whitespace"
    bad = sorted(set(name) & _FORBIDDEN_CHARS)
    if bad:
        return f"contains forbidden character(s) {' '.join(bad)}"
    if ".." in name:
        return "contains '..'"
    if "//" in name:
        return "contains '//'"
    if "@{" in name:
        return "contains '@{'"
    if name[0] in "/-":
        return f"starts with {name[0]!r}"
    if name.endswith("/") or name.endswith("."):
        return f"ends with {name[-1]!r}"
    if name.endswith(".lock"):
        return "ends with '.lock'"
    if any(part.startswith(".") for part in name.split("/")):
        return "a path component starts with '.'"
    return None


def is_valid_name(name: str) -> bool:
    """Whether `check_name` would accept `name`."""
    return isinstance(name, str) and bool(name) and _name_problem(name) is None


@dataclass(frozen=True)
class RefStep:
    """One navigation step: `~n` (n-th first-parent ancestor) or `^n` (n-th parent, 0 = itself)."""

    op: str  # "~" or "^"
    n: int


@dataclass(frozen=True)
class RefExpression:
    """A parsed ref expression: a base name (branch, tag, hash or HEAD) and navigation steps."""

    base: str
    steps: tuple[RefStep, ...]


def parse_ref(expr: str) -> RefExpression:
    """Split `expr` into its base and `~n` / `^n` steps (`HEAD~3`, `main^2`, `v1^^`, `feat/x~`)."""
    if not isinstance(expr, str) or not expr.strip():
        raise RefNotFoundError("empty ref")
    expr = expr.strip()
    cut = len(expr)
    for i, c in enumerate(expr):
        if c in "~^":
            cut = i
            break
    base, rest = expr[:cut], expr[cut:]
    if not base:
        raise RefNotFoundError(f"invalid ref {expr!r}: missing a name before {rest[:1]!r}")
    if base == "@":
        base = HEAD
    steps: list[RefStep] = []
    pos = 0
    while pos < len(rest):
        m = _SUFFIX.match(rest, pos)
        if m is None:
            raise RefNotFoundError(
                f"invalid ref {expr!r}: unexpected {rest[pos:]!r}",
                hint="use NAME, NAME~N (N-th ancestor), NAME^ or NAME^N (N-th parent)",
            )
        token = m.group(0)
        digits = token[1:]
        n = int(digits) if digits else 1
        steps.append(RefStep(token[0], n))
        pos = m.end()
    return RefExpression(base, tuple(steps))
