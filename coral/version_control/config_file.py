"""Editing `.coral/config.toml` one key at a time, keeping its comments and every other key.

A `section.key = value` line is replaced in place, added at the end of its `[section]`, or the
section is appended. The edited text is parsed back and compared with the intended settings;
where the file's layout defeats a line edit (a multi-line array, an inline table, dotted keys)
the file is rewritten from its parsed settings instead (comments are lost only then). Every
write is atomic, and each read-edit-write holds an exclusive lock on `FILE.lock`, so two
processes setting keys at once both land.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import tomli_w

from coral.errors import CoralError
from coral.storage.atomic_file import write_atomic
from coral.version_control.locking import RepositoryLock

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def split_key(key: str) -> tuple[str, str]:
    """ "storage.mode" -> ("storage", "mode")."""
    section, dot, name = key.partition(".")
    if not dot or not _BARE_KEY.fullmatch(section) or not _BARE_KEY.fullmatch(name):
        raise CoralError(f"bad setting name {key!r}", hint="write SECTION.KEY, e.g. storage.mode")
    return section, name


def toml_value(value: Any) -> str:
    """`value` as an inline TOML value (one line)."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        raise CoralError(f"{value} cannot be stored", hint="give a finite number")
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def set_key(path: Path, key: str, value: Any) -> None:
    """Write `section.key = value` into the TOML file at `path` (created when missing)."""
    section, name = split_key(key)
    with _editing(path):
        _set_key(path, section, name, value)


def _set_key(path: Path, section: str, name: str, value: Any) -> None:
    text, data = _read(path)
    expected = copy.deepcopy(data)
    table = expected.setdefault(section, {})
    if not isinstance(table, dict):
        raise CoralError(f"{section} in {path} is not a table", hint=f"make it a [{section}] table")
    table[name] = value
    _write(path, _set_line(text, section, name, value), expected)


def unset_key(path: Path, key: str) -> bool:
    """Remove `section.key` from the file; False when it was not there."""
    section, name = split_key(key)
    with _editing(path):
        return _unset_key(path, section, name)


def _editing(path: Path) -> AbstractContextManager[None]:
    """The exclusive lock of one read-edit-write of `path` (a `flock` on `PATH.lock`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return RepositoryLock(path.with_name(path.name + ".lock")).exclusive()


def _unset_key(path: Path, section: str, name: str) -> bool:
    text, data = _read(path)
    table = data.get(section)
    if not isinstance(table, dict) or name not in table:
        return False
    expected = copy.deepcopy(data)
    del expected[section][name]
    lines = text.splitlines(keepends=True)
    found = _find_key(lines, section, name)
    edited = "".join(lines[:found] + lines[found + 1 :]) if found is not None else text
    _write(path, edited, expected)
    return True


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    if not path.exists():
        return "", {}
    text = path.read_text(encoding="utf-8")
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CoralError(f"cannot read {path}: {exc}", hint="fix or delete the file") from exc


def _write(path: Path, edited: str, expected: dict[str, Any]) -> None:
    try:
        ok = tomllib.loads(edited) == expected
    except tomllib.TOMLDecodeError:
        ok = False
    write_atomic(path, edited if ok else tomli_w.dumps(expected))


def _section_bounds(lines: list[str], section: str) -> tuple[int, int] | None:
    """(index of the `[section]` line, index after its last line), or None."""
    start = None
    for i, line in enumerate(lines):
        header = _HEADER.match(line)
        if start is None:
            if header and header.group(1) == section:
                start = i
        elif _ANY_HEADER.match(line):
            return start, i
    return (start, len(lines)) if start is not None else None


def _find_key(lines: list[str], section: str, name: str) -> int | None:
    bounds = _section_bounds(lines, section)
    if bounds is None:
        return None
    pattern = re.compile(rf"^\s*(?:{re.escape(name)}|\"{re.escape(name)}\")\s*=")
    for i in range(bounds[0] + 1, bounds[1]):
        if pattern.match(lines[i]):
            return i
    return None


def _set_line(text: str, section: str, name: str, value: Any) -> str:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    line = f"{name} = {toml_value(value)}\n"
    found = _find_key(lines, section, name)
    if found is not None:
        lines[found] = line
        return "".join(lines)
    bounds = _section_bounds(lines, section)
    if bounds is None:
        blank = ["\n"] if lines and lines[-1].strip() else []
        return "".join([*lines, *blank, f"[{section}]\n", line])
    end = bounds[1]
    while end > bounds[0] + 1 and not lines[end - 1].strip():
        end -= 1  # after the section's last key, before the blank lines that end it
    return "".join([*lines[:end], line, *lines[end:]])
