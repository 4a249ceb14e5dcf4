"""The settings `.coral/config.toml` knows: their types, defaults and checks.

`coral config` and settings profiles validate through `lookup` (an unknown key names the
closest known one) and `parse_value` (text from the command line to a typed value, checked
by the code that uses the setting: `StoreConfig`, `WatchRules`, the similarity index).
"""

from __future__ import annotations

import difflib
import functools
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from coral.core.units import parse_size
from coral.errors import CoralError
from coral.storage.cluster import ClusterSettings
from coral.storage.config import MODES, StoreConfig
from coral.training.watch_rules import WatchRules
from coral.version_control.config_profiles import (
    SECTIONS as PROFILE_SECTIONS,
)
from coral.version_control.config_profiles import (
    SIMILARITY_KEYS,
    check_profile_name,
    similarity_threshold,
)
from coral.version_control.database import FORMAT_VERSION
from coral.version_control.shared_index import DEFAULTS as SHARED_DEFAULTS
from coral.version_control.shared_index import check_backend, check_namespace

ALIAS_SECTION = "alias"  # `[alias] NAME = "COMMAND ARGS"`, managed by `coral alias`

_STORAGE_HELP = {
    "chunk_bytes": "chunk size in bytes, 4096 to 1 GiB (sizes like 8MiB work)",
    "max_chain_depth": "longest delta chain a read follows (0: 8, or 32 in max mode)",
    "reverse_deltas": "newest version FULL, older ones XOR deltas against it",
    "mode": "how hard chunks are encoded: " + " | ".join(MODES),
    "workers": "encoding threads (0: one per CPU)",
    "cache_bytes": "decoded-chunk cache in bytes (sizes like 512MiB work)",
    "fsync": "make every object durable before a ref points at it",
}
_CLUSTER_HELP = {
    "scheduler": "Dask scheduler that encodes chunks, tcp://HOST:PORT (CORAL_DASK_SCHEDULER wins)",
    "timeout": "seconds to wait for the scheduler to answer, or for a worker to appear",
    "retries": "times a chunk task that failed is run again before the command fails",
}
_WATCH_HELP = {
    "patterns": "checkpoint file patterns `coral watch` commits (a list)",
    "every": "commit every N-th new checkpoint",
    "message": "commit message template ({filename}, {n})",
    "debounce_ms": "wait this long for a checkpoint to stop changing",
    "interval": "seconds between scans of the folder",
    "branch": "branch the checkpoints go to",
    "include_existing": "also commit checkpoints that exist when watching starts",
}


@dataclass(frozen=True)
class Setting:
    """One known setting: `kind` is str, int, float, bool, size (bytes) or list."""

    key: str
    kind: str
    default: Any
    help: str
    writable: bool = True
    profiled: bool = True  # False: a site setting that profiles may not hold

    @property
    def section(self) -> str:
        return self.key.partition(".")[0]

    @property
    def in_profiles(self) -> bool:
        return self.profiled and self.section in PROFILE_SECTIONS

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "type": self.kind, "default": self.default, "help": self.help}


def _kind(value: Any, name: str) -> str:
    if name.endswith("_bytes"):
        return "size"
    for kind in (bool, int, float, str, list):
        if isinstance(value, kind):
            return kind.__name__
    return "str"


def _from_dataclass(section: str, cls: Any, help_texts: Mapping[str, str]) -> list[Setting]:
    found = []
    for f in fields(cls):
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = None
        kind = "list" if isinstance(default, list | tuple) else _kind(default, f.name)
        if default is None:
            kind = "str"
        found.append(Setting(f"{section}.{f.name}", kind, default, help_texts.get(f.name, "")))
    return found


@functools.cache
def known_settings() -> dict[str, Setting]:
    """Every known setting by key, section by section."""
    rows = [
        Setting("core.format_version", "int", FORMAT_VERSION, "on-disk format", writable=False),
        Setting("core.default_branch", "str", "main", "branch `coral init` created first"),
        Setting("core.profile", "str", "default", "active settings profile (CORAL_PROFILE wins)"),
        Setting("user.name", "str", None, "commit author (CORAL_AUTHOR wins)"),
        Setting("user.email", "str", None, "author's e-mail, added to the name"),
        *_from_dataclass("storage", StoreConfig, _STORAGE_HELP),
        *(
            Setting(f"similarity.{k}", "float", v, "cosine a tensor needs to be a delta reference")
            for k, v in SIMILARITY_KEYS.items()
        ),
        Setting(
            "similarity.backend",
            "str",
            SHARED_DEFAULTS["backend"],
            "index of delta bases: local, or redis://HOST:PORT/DB (shared)",
            profiled=False,
        ),
        Setting(
            "similarity.namespace",
            "str",
            SHARED_DEFAULTS["namespace"],
            "key prefix in the shared index (same prefix: shared bases)",
            profiled=False,
        ),
        *_from_dataclass("watch", WatchRules, _WATCH_HELP),
        *_from_dataclass("cluster", ClusterSettings, _CLUSTER_HELP),
    ]
    return {s.key: s for s in rows}


def lookup(key: str) -> Setting:
    """The known setting `key`; an unknown one raises CoralError naming the closest."""
    known = known_settings()
    if key in known:
        return known[key]
    if key.startswith(f"{ALIAS_SECTION}."):
        raise CoralError(
            f"{key} is an alias, not a setting",
            hint='manage aliases with `coral alias NAME "COMMAND ARGS"` and `coral alias --remove`',
        )
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not close:  # `mode` for `storage.mode`
        close = [k for k in known if k.partition(".")[2] == key][:1]
    hint = f"did you mean {close[0]}? " if close else ""
    raise CoralError(
        f"unknown setting {key!r}", hint=hint + "`coral config list --all` shows every setting"
    )


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_value(setting: Setting, text: str) -> Any:
    """The typed value of `text` for `setting`, checked; CoralError with a hint otherwise."""
    raw = text.strip()
    value: Any
    try:
        if setting.kind == "bool":
            if raw.lower() not in _TRUE | _FALSE:
                raise ValueError
            value = raw.lower() in _TRUE
        elif setting.kind == "int":
            value = int(raw.replace("_", ""))
        elif setting.kind == "size":
            value = parse_size(raw)
        elif setting.kind == "float":
            value = float(raw)
        elif setting.kind == "list":
            value = _parse_list(raw)
        else:
            value = text
    except (ValueError, tomllib.TOMLDecodeError, CoralError):
        raise CoralError(
            f"{setting.key} takes {_a(setting.kind)}, not {text!r}", hint=_example(setting)
        ) from None
    check_value(setting, value)
    return value


def _parse_list(raw: str) -> list[str]:
    if raw.startswith("["):
        value = tomllib.loads(f"v = {raw}")["v"]
        if not all(isinstance(v, str) for v in value):
            raise ValueError(raw)
        return list(value)
    return [part.strip() for part in raw.split(",") if part.strip()]


def _a(kind: str) -> str:
    return {
        "bool": "true or false",
        "int": "a whole number",
        "size": "a size in bytes",
        "float": "a number",
        "list": "a list",
    }.get(kind, "text")


def _example(setting: Setting) -> str:
    return {
        "bool": f"e.g. `coral config set {setting.key} false`",
        "int": f"e.g. `coral config set {setting.key} 8`",
        "size": f"e.g. `coral config set {setting.key} 8MiB`",
        "float": f"e.g. `coral config set {setting.key} 0.97`",
        "list": f'e.g. `coral config set {setting.key} "*.pt,*.safetensors"`',
    }.get(setting.kind, f"`coral config list --all` describes {setting.key}")


def check_value(setting: Setting, value: Any) -> None:
    """Raise CoralError unless the code that reads `setting` accepts `value`."""
    section, _, name = setting.key.partition(".")
    try:
        if section == "storage":
            StoreConfig(**{name: value})
        elif section == "watch":
            WatchRules(**{name: value})
        elif section == "cluster":
            ClusterSettings(**{name: value})
        elif setting.key == "similarity.backend":
            check_backend(value)
        elif setting.key == "similarity.namespace":
            check_namespace(value)
        elif section == "similarity":
            similarity_threshold({"similarity": {name: value}})
        elif setting.key == "core.profile":
            check_profile_name(value)
    except CoralError as exc:
        raise CoralError(exc.message, hint=exc.hint or _example(setting)) from None
    except (TypeError, ValueError) as exc:
        raise CoralError(f"bad value for {setting.key}: {exc}", hint=_example(setting)) from None


def flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """{"section": {"key": v}} -> {"section.key": v} (top-level keys stay as they are)."""
    flat: dict[str, Any] = {}
    for section, table in config.items():
        if isinstance(table, Mapping):
            for key, value in table.items():
                flat[f"{section}.{key}"] = value
        else:
            flat[section] = table
    return flat
