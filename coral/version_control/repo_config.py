"""Finding a repository, reading its `config.toml`, opening its object store.

The settings a repository runs with are merged here, in one place, for every opening:
built-in defaults < the active settings profile (`CORAL_PROFILE`, else `[core] profile`; see
`config_profiles`) < the keys written in `config.toml` itself.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from coral.errors import CoralError, FormatVersionError, NotARepositoryError
from coral.storage.cluster import cluster_settings
from coral.storage.pack_store import PackStore
from coral.version_control.config_profiles import apply_profile, similarity_threshold
from coral.version_control.database import FORMAT_VERSION

CORAL_DIR = ".coral"
DB_FILE = "coral.db"


def find_root(start: Path) -> Path:
    if start.name == CORAL_DIR and (start / DB_FILE).exists():
        return start.parent
    for candidate in (start, *start.parents):
        if (candidate / CORAL_DIR / DB_FILE).is_file():
            return candidate
    raise NotARepositoryError(f"not a Coral repository (or any parent up to /): {start}")


def read_config(path: Path) -> dict[str, Any]:
    """The effective settings of the repository whose `config.toml` is `path`: its explicit
    keys over the active profile's (whose name `[core] profile` of the result holds)."""
    config = apply_profile(read_raw_config(path), path.parent)
    similarity_threshold(config, str(path))  # a bad value fails here, not silently in each add
    return config


def read_raw_config(path: Path) -> dict[str, Any]:
    """`config.toml` as written (no profile applied); {} when there is none."""
    if not path.exists():
        return {}
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CoralError(f"cannot read {path}: {exc}", hint="fix or delete the file") from exc
    core = config.get("core", {})
    found = core.get("format_version") if isinstance(core, dict) else None
    if isinstance(found, int) and found > FORMAT_VERSION:
        raise FormatVersionError(
            f"repository format {found} (in {path}) is newer than this Coral supports "
            f"({FORMAT_VERSION})"
        )
    return config


def open_store(root: Path, config: Mapping[str, Any]) -> PackStore:
    from coral.storage.config import StoreConfig

    settings = config.get("storage", {}) if isinstance(config.get("storage"), dict) else {}
    valid = [f.name for f in fields(StoreConfig)]
    unknown = sorted(k for k in settings if k not in valid)
    if unknown:
        raise CoralError(
            f"unknown [storage] setting{'s' if len(unknown) > 1 else ''} in config.toml: "
            + ", ".join(repr(k) for k in unknown),
            hint=f"fix the spelling in .coral/config.toml; valid keys: {', '.join(valid)}",
        )
    try:
        store_config = StoreConfig(**settings)
    except (TypeError, ValueError) as exc:
        raise CoralError(f"bad [storage] settings in config.toml: {exc}") from exc
    store = PackStore(root, store_config)
    store.cluster = cluster_settings(config)  # where chunks encode: local, or a Dask cluster
    return store
