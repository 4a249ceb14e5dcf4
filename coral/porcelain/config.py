"""`coral config`: read and write the settings in `.coral/config.toml`.

Every value has a source: written in config.toml ("config"), set by the active profile
("profile"), chosen by `CORAL_PROFILE` ("env", for core.profile only), or the built-in
default ("default"). These functions read the file itself, not an open `Repository`, so a
setting that stops a repository from opening can still be fixed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral.errors import CoralError
from coral.porcelain.config_keys import (
    ALIAS_SECTION,
    check_value,
    flatten,
    known_settings,
    lookup,
    parse_value,
)
from coral.version_control import config_file
from coral.version_control.config_profiles import active_profile, load_profile
from coral.version_control.repo_config import CORAL_DIR, find_root, read_raw_config
from coral.version_control.repository import CONFIG_FILE, Repository

Target = Repository | str | os.PathLike[str]


def repository_root(target: Target) -> Path:
    """The root folder of the repository `target` is (or is inside of)."""
    if isinstance(target, Repository):
        return target.path
    return find_root(Path(target).expanduser().absolute())


def config_path(root: Path) -> Path:
    return root / CORAL_DIR / CONFIG_FILE


@dataclass(frozen=True)
class ConfigEntry:
    """A setting's value and where it comes from: config, profile, env or default."""

    key: str
    value: Any
    source: str
    profile: str | None = None  # the profile that set it (source "profile")
    known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "source": self.source,
            "profile": self.profile,
            "known": self.known,
        }


@dataclass(frozen=True)
class ConfigChange:
    """What `set_value` / `unset_value` did: the key's new value (None: unset) and old one."""

    key: str
    value: Any
    previous: Any
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "previous": self.previous,
            "path": str(self.path),
        }


def effective_settings(target: Target) -> dict[str, ConfigEntry]:
    """Every setting with a value: defaults < the active profile < config.toml, by key."""
    root = repository_root(target)
    raw = read_raw_config(config_path(root))
    name, chosen_by = active_profile(raw)
    profile = load_profile(root / CORAL_DIR, name)
    known = known_settings()
    entries = {
        key: ConfigEntry(key, s.default, "default")
        for key, s in known.items()
        if s.default is not None
    }
    for key, value in profile.flat().items():
        entries[key] = ConfigEntry(key, value, "profile", profile=name)
    for key, value in flatten(raw).items():
        ok = key in known or key.startswith(f"{ALIAS_SECTION}.")
        entries[key] = ConfigEntry(key, value, "config", known=ok)
    if chosen_by == "env":
        entries["core.profile"] = ConfigEntry("core.profile", name, "env")
    order = {key: i for i, key in enumerate(known)}
    return dict(sorted(entries.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def get_value(target: Target, key: str) -> ConfigEntry:
    """The effective value of `key`; CoralError if it is unknown or has no value."""
    entries = effective_settings(target)
    if key in entries:
        return entries[key]
    setting = lookup(key)
    raise CoralError(
        f"{key} is not set", hint=f"set it with `coral config set {setting.key} VALUE`"
    )


def list_values(target: Target, *, include_defaults: bool = False) -> list[ConfigEntry]:
    """The settings that are set (by config.toml, the profile or CORAL_PROFILE), in the order
    of the known settings; with `include_defaults`, every setting with a value."""
    return [
        e for e in effective_settings(target).values() if include_defaults or e.source != "default"
    ]


def set_value(target: Target, key: str, value: Any) -> ConfigChange:
    """Write `key = value` into config.toml (text from a command line is parsed by the
    setting's type); comments and other keys stay as they are."""
    setting = lookup(key)
    if not setting.writable:
        raise CoralError(
            f"{key} cannot be set", hint="`coral init` records it: it names the on-disk format"
        )
    if isinstance(value, str):
        value = parse_value(setting, value)
    else:
        check_value(setting, value)
    root = repository_root(target)
    if key == "core.profile":
        load_profile(root / CORAL_DIR, value)  # an unknown profile names the closest
    path = config_path(root)
    previous = flatten(read_raw_config(path)).get(key)
    config_file.set_key(path, key, value)
    return ConfigChange(key, value, previous, path)


def unset_value(target: Target, key: str) -> ConfigChange:
    """Remove `key` from config.toml (the profile's value or the default applies again)."""
    root = repository_root(target)
    path = config_path(root)
    raw = flatten(read_raw_config(path))
    if key not in raw:
        setting = lookup(key)
        raise CoralError(
            f"{key} is not set in {path}",
            hint="`coral config list` shows what is set, and where"
            + (" (a profile's value changes with its profile)" if setting.in_profiles else ""),
        )
    if key in known_settings() and not known_settings()[key].writable:
        raise CoralError(f"{key} cannot be unset", hint="`coral init` records the on-disk format")
    config_file.unset_key(path, key)
    return ConfigChange(key, None, raw[key], path)
