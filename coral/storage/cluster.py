"""Which Dask scheduler, if any, runs a store's chunk encoding and decoding.

The choice, first found wins: `--cluster ADDRESS` on the command line, the environment
variable `CORAL_DASK_SCHEDULER`, `[cluster] scheduler` in `.coral/config.toml`; none (or the
word `local`) keeps the work on this machine's threads. Nothing here imports Dask: a command
that never encodes pays nothing for it (see `encode_pool.DaskPool`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from coral.errors import CoralError

ENV_VAR = "CORAL_DASK_SCHEDULER"
LOCAL = "local"  # `--cluster local`: this machine's threads, whatever the config says
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_EXAMPLE = "e.g. tcp://10.0.0.5:8786, the address `dask scheduler` prints"


class ClusterError(CoralError):
    """The Dask cluster cannot be reached or cannot finish the work."""

    default_hint = (
        f"check the scheduler and its workers, or encode on this machine: `--cluster {LOCAL}`, "
        f"unset {ENV_VAR}, or `coral config unset cluster.scheduler`"
    )


@dataclass(frozen=True)
class ClusterSettings:
    """scheduler: the Dask scheduler's address (None: local threads).
    timeout: seconds to wait for the scheduler to answer, and for a worker to appear.
    retries: times a task that raised is run again before the operation fails (a task whose
    worker dies is moved to another worker by the scheduler, without counting here)."""

    scheduler: str | None = None
    timeout: float = 10.0
    retries: int = 2

    def __post_init__(self) -> None:
        if self.scheduler is not None:
            object.__setattr__(self, "scheduler", check_address(self.scheduler))
        if not isinstance(self.timeout, int | float) or not 0 < self.timeout <= 3600:
            raise ValueError("timeout must be a number of seconds between 0 and 3600")
        if not isinstance(self.retries, int) or not 0 <= self.retries <= 100:
            raise ValueError("retries must be a whole number from 0 to 100")


def check_address(address: str) -> str | None:
    """`address` as Dask reads it (`HOST:PORT` means tcp); None for `local` or nothing."""
    text = address.strip()
    if not text or text.lower() == LOCAL:
        return None
    if "://" not in text:
        text = f"tcp://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        port = None
        parts = None
    if (
        parts is None
        or parts.scheme not in SCHEMES
        or not parts.hostname
        or port is None
        or parts.path not in ("", "/")
    ):
        raise CoralError(f"not a Dask scheduler address: {address!r}", hint=_EXAMPLE)
    return text.rstrip("/")


def cluster_settings(config: Mapping[str, Any], override: str | None = None) -> ClusterSettings:
    """The settings a repository with effective `config` runs with: `override` (`--cluster`)
    over `CORAL_DASK_SCHEDULER` over `[cluster]` of the config."""
    table = config.get("cluster", {})
    table = table if isinstance(table, Mapping) else {}
    try:
        settings = ClusterSettings(**{k: v for k, v in table.items() if k != "scheduler"})
        if not isinstance(table.get("scheduler", ""), str):
            raise ValueError(f"scheduler must be text, not {table['scheduler']!r}")
    except (TypeError, ValueError) as exc:
        raise CoralError(
            f"bad [cluster] settings in config.toml: {exc}",
            hint="`coral config list --all` describes the cluster.* settings",
        ) from None
    for address, source in (
        (override, "--cluster"),
        (os.environ.get(ENV_VAR), ENV_VAR),
        (table.get("scheduler"), "[cluster] scheduler of config.toml"),
    ):
        if address is not None:
            try:
                return replace(settings, scheduler=address)
            except CoralError as exc:
                raise CoralError(f"{source}: {exc.message}", hint=exc.hint) from None
    return settings
