"""The settings of `coral watch` (the [watch] table of .coral/config.toml), importable without
the commit machinery: the CLI checks config keys against them at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from coral.errors import CoralError

DEFAULT_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "*.pt",
    "*.pth",
    "*.bin",
    "*.ckpt",
    "*.npz",
    "*.onnx",
    "*.keras",
    "*.index",
    "checkpoint-*",
)


class WatchConfigError(CoralError):
    default_hint = "see `coral watch --help` for the [watch] settings of .coral/config.toml"


@dataclass
class WatchRules:
    """What `coral watch` commits, and how."""

    patterns: list[str] = field(default_factory=lambda: list(DEFAULT_PATTERNS))
    every: int = 1
    message: str = "{filename} step {n}"
    debounce_ms: int = 1000
    interval: float = 0.5
    branch: str | None = None
    include_existing: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.patterns, str):
            self.patterns = [self.patterns]
        if not isinstance(self.every, int) or self.every < 1:
            raise WatchConfigError(f"every must be a positive integer, not {self.every!r}")
        if self.debounce_ms < 0 or self.interval <= 0:
            raise WatchConfigError("debounce_ms must be >= 0 and interval > 0")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> WatchRules:
        """Rules from a repository config's [watch] table, then the non-None `overrides`."""
        section = config.get("watch") or {}
        if not isinstance(section, Mapping):
            raise WatchConfigError("[watch] in config.toml must be a table")
        known = {f.name for f in fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise WatchConfigError(f"unknown [watch] settings: {', '.join(sorted(unknown))}")
        values = {**section, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**values)
