"""`--cluster ADDRESS`: run a command's chunk encoding and decoding on a Dask cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coral.storage.cluster import cluster_settings
from coral.version_control.repository import Repository


@dataclass(frozen=True)
class ClusterUse:
    """Where the repository's chunk work runs: `scheduler` None means local threads."""

    scheduler: str | None
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "description": self.description}


def use_cluster(repo: Repository, address: str | None = None) -> ClusterUse:
    """Choose where `repo` encodes and decodes chunks — `address` (`--cluster`; `local` for
    this machine's threads) over CORAL_DASK_SCHEDULER over `[cluster] scheduler` — and
    connect now, so that an unreachable scheduler fails (ClusterError) before anything is
    stored."""
    pool = repo.store.use_cluster(cluster_settings(repo.config, address))
    return ClusterUse(pool.address, pool.describe())
