"""Settings profiles: named bundles of `[storage]` and `[similarity]` settings.

Three are built in (`default`, `fast`, `archive`); a repository's own live in
`.coral/profiles/NAME.toml`:

    name = "small"                       # optional; the file's stem otherwise
    description = "what it is for"       # optional
    [storage]
    mode = "max"
    [similarity]
    threshold = 0.97

The active profile is `CORAL_PROFILE` (one process), else `[core] profile`, else `default`.
`apply_profile` merges it under the repository's explicit settings: built-in defaults <
profile < `config.toml`.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from coral.errors import CoralError
from coral.storage.config import StoreConfig

ENV_VAR = "CORAL_PROFILE"
DEFAULT_PROFILE = "default"
PROFILES_DIR = "profiles"
SECTIONS = ("storage", "similarity")  # what a profile may set
SIMILARITY_KEYS = {"threshold": 0.99}  # [similarity] settings and their defaults
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Profile:
    """A profile: its settings by section (`{"storage": {"mode": "max"}}`)."""

    name: str
    description: str = ""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None  # None: built in

    @property
    def builtin(self) -> bool:
        return self.path is None

    def flat(self) -> dict[str, Any]:
        """The settings as {"section.key": value}."""
        return {f"{s}.{k}": v for s, values in self.settings.items() for k, v in values.items()}


BUILTIN: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("default", "Coral's defaults: XOR deltas, FULL when a delta is poor, chains of 8"),
        Profile(
            "fast",
            "quickest commits: XOR delta whenever a reference exists, no repack",
            {"storage": {"mode": "fast"}},
        ),
        Profile(
            "archive",
            "smallest store: every lossless encoding tried, delta chains up to 64 deep, "
            "looser similarity matching for references",
            {"storage": {"mode": "max", "max_chain_depth": 64}, "similarity": {"threshold": 0.95}},
        ),
    )
}


def check_profile_name(name: str) -> str:
    if not _NAME.fullmatch(name) or name.endswith(".toml"):
        raise CoralError(
            f"bad profile name {name!r}",
            hint="use letters, digits and . _ - (up to 64, starting with a letter or digit)",
        )
    return name


def profiles_dir(coral_dir: Path) -> Path:
    return coral_dir / PROFILES_DIR


def profile_file(coral_dir: Path, name: str) -> Path:
    """Where the repository's profile `name` lives (whether or not it exists)."""
    return profiles_dir(coral_dir) / f"{check_profile_name(name)}.toml"


def user_profile_names(coral_dir: Path) -> list[str]:
    folder = profiles_dir(coral_dir)
    if not folder.is_dir():
        return []
    return sorted(
        p.stem for p in folder.glob("*.toml") if _NAME.fullmatch(p.stem) and p.stem not in BUILTIN
    )


def all_profile_names(coral_dir: Path) -> list[str]:
    return [*BUILTIN, *user_profile_names(coral_dir)]


def parse_profile(text: str, source: str, default_name: str) -> Profile:
    """A profile from TOML text (a profile file or an exported one); every setting checked."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CoralError(f"cannot read profile {source}: {exc}", hint="fix the TOML") from exc
    name = data.pop("name", default_name)
    description = data.pop("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise CoralError(f"profile {source}: name and description must be strings")
    unknown = sorted(k for k in data if k not in SECTIONS)
    if unknown:
        raise CoralError(
            f"profile {source} sets {', '.join(repr(k) for k in unknown)}",
            hint="a profile holds only [storage] and [similarity] tables (and name, description)",
        )
    settings: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            raise CoralError(f"profile {source}: {section} must be a table ([{section}])")
        if values:
            settings[section] = dict(values)
    check_settings(settings, f"profile {source}")
    return Profile(check_profile_name(name), description, settings)


def check_settings(settings: Mapping[str, Any], where: str) -> None:
    """Raise CoralError naming `where` unless the [storage] and [similarity] tables are valid."""
    storage = settings.get("storage") or {}
    valid = [f.name for f in fields(StoreConfig)]
    for key in storage:
        if key not in valid:
            raise unknown_key_error(f"storage.{key}", where, [f"storage.{k}" for k in valid])
    try:
        StoreConfig(**storage)
    except (TypeError, ValueError) as exc:
        raise CoralError(f"bad [storage] settings in {where}: {exc}") from exc
    similarity = settings.get("similarity") or {}
    for key in similarity:
        if key not in SIMILARITY_KEYS:
            raise unknown_key_error(
                f"similarity.{key}", where, [f"similarity.{k}" for k in SIMILARITY_KEYS]
            )
    similarity_threshold({"similarity": similarity}, where)


def unknown_key_error(key: str, where: str, valid: list[str]) -> CoralError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return CoralError(
        f"unknown setting {key!r} in {where}", hint=f"{hint}valid keys: {', '.join(valid)}"
    )


def similarity_threshold(config: Mapping[str, Any], where: str = "") -> float:
    """`[similarity] threshold`: the cosine similarity a stored tensor needs to become the
    delta reference of a tensor with no same-named one in HEAD."""
    section = config.get("similarity")
    value = section.get("threshold", SIMILARITY_KEYS["threshold"]) if section else None
    if value is None:
        return SIMILARITY_KEYS["threshold"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
        raise CoralError(
            f"bad similarity.threshold {value!r}" + (f" in {where}" if where else ""),
            hint="a cosine similarity between -1 and 1, e.g. 0.99",
        )
    return float(value)


def load_profile(coral_dir: Path, name: str) -> Profile:
    """The profile `name`: built in, or `.coral/profiles/NAME.toml`."""
    if name in BUILTIN:
        return BUILTIN[name]
    path = profile_file(coral_dir, name)
    if not path.is_file():
        raise unknown_profile_error(coral_dir, name)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CoralError(f"cannot read profile {path}: {exc}", hint="fix or delete it") from exc
    profile = parse_profile(text, str(path), name)
    return Profile(name, profile.description, profile.settings, path)


def unknown_profile_error(coral_dir: Path, name: str, source: str = "") -> CoralError:
    names = all_profile_names(coral_dir)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return CoralError(
        f"no settings profile named {name!r}{source}",
        hint=f"{hint}profiles: {', '.join(names)}; pick one with `coral config profile use NAME`",
    )


def active_profile(config: Mapping[str, Any]) -> tuple[str, str]:
    """(name, where it was chosen: "env", "config" or "default") for a raw config."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env, "env"
    core = config.get("core")
    name = core.get("profile") if isinstance(core, dict) else None
    if isinstance(name, str) and name:
        return name, "config"
    return DEFAULT_PROFILE, "default"


def apply_profile(config: Mapping[str, Any], coral_dir: Path) -> dict[str, Any]:
    """`config` (as read from config.toml) over the active profile's settings; `[core]
    profile` of the result names the active profile."""
    name, source = active_profile(config)
    if name not in BUILTIN and not profile_file(coral_dir, name).is_file():
        if source == "env":
            raise unknown_profile_error(coral_dir, name, f" (CORAL_PROFILE={name})")
        raise unknown_profile_error(coral_dir, name, " ([core] profile of config.toml)")
    profile = load_profile(coral_dir, name)
    merged = copy.deepcopy(dict(config))
    for section, values in profile.settings.items():
        table = merged.setdefault(section, {})
        if isinstance(table, dict):
            for key, value in values.items():
                table.setdefault(key, value)
    core = merged.setdefault("core", {})
    if isinstance(core, dict):
        core["profile"] = name
    return merged
