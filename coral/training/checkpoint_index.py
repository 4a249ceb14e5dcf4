"""`CheckpointIndex`: the training checkpoints of each branch, in the repository database.

One row per checkpoint commit (CheckpointManager's saves and `coral watch`'s commits): branch,
step, epoch, metrics, and when (if) retention pruned it. Pruning marks the row and — once no
branch lists the commit any more — the commit itself (`Repository.prune_commits`): a mark that
lets `gc` delete its weights; commits are never rewritten. A pruned checkpoint disappears from
`list_checkpoints` but stays in the history and loadable by its hash (and can be brought back
with `unprune`) until `gc`, which deletes its weights unless a branch, tag or HEAD names it;
then reading it raises PrunedCommitError. With `CheckpointConfig.auto_gc` the manager runs that
gc right after pruning (`collect_pruned`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coral.training.config import CheckpointConfig

COMPONENT = "training"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS training_checkpoints (
    commit_id  TEXT NOT NULL,
    branch     TEXT NOT NULL,
    step       INTEGER NOT NULL,
    epoch      INTEGER,
    metrics    TEXT NOT NULL DEFAULT '{}',
    reason     TEXT,
    created_at REAL NOT NULL,
    pruned_at  REAL,
    PRIMARY KEY (branch, commit_id)
);
CREATE INDEX IF NOT EXISTS training_checkpoints_by_step ON training_checkpoints(branch, step);
"""

if TYPE_CHECKING:
    from coral.version_control.gc import GCResult
    from coral.version_control.repository import Repository


@dataclass
class CheckpointInfo:
    """One training checkpoint: its commit and where in the run it was taken."""

    commit: str
    branch: str
    step: int
    epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    created_at: float = 0.0
    pruned: bool = False

    @property
    def commit_hash(self) -> str:
        return self.commit

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "branch": self.branch,
            "step": self.step,
            "epoch": self.epoch,
            "metrics": self.metrics,
            "reason": self.reason,
            "created_at": self.created_at,
            "pruned": self.pruned,
        }


class CheckpointIndex:
    """Reads and writes the `training_checkpoints` table of a repository's database."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.db = repo.database
        self.db.ensure_component(COMPONENT, SCHEMA_VERSION, _SCHEMA)

    def record(self, info: CheckpointInfo) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO training_checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    info.commit,
                    info.branch,
                    int(info.step),
                    info.epoch,
                    json.dumps(_finite(info.metrics)),
                    info.reason,
                    info.created_at or time.time(),
                ),
            )

    def list(self, branch: str, include_pruned: bool = False) -> list[CheckpointInfo]:
        """The branch's checkpoints, oldest first (by step, then time)."""
        sql = (
            "SELECT commit_id, branch, step, epoch, metrics, reason, created_at, pruned_at "
            "FROM training_checkpoints WHERE branch=?"
        )
        if not include_pruned:
            sql += " AND pruned_at IS NULL"
        rows = self.db.query(sql + " ORDER BY step, created_at", (branch,))
        return [
            CheckpointInfo(
                commit=r[0],
                branch=r[1],
                step=int(r[2]),
                epoch=r[3],
                metrics=json.loads(r[4] or "{}"),
                reason=r[5],
                created_at=float(r[6]),
                pruned=r[7] is not None,
            )
            for r in rows
        ]

    def mark_pruned(self, branch: str, commits: Iterable[str]) -> int:
        """Hide checkpoints from the branch's list; commits no branch lists any more are
        pruned in the repository too (gc may then delete their weights). Returns rows hidden."""
        commits = list(dict.fromkeys(commits))
        now = time.time()
        with self.db.transaction() as tx:
            hidden = sum(
                tx.execute(
                    "UPDATE training_checkpoints SET pruned_at=? WHERE branch=? AND commit_id=? "
                    "AND pruned_at IS NULL",
                    (now, branch, c),
                ).rowcount
                for c in commits
            )
            unlisted = [c for c in commits if not self._listed(tx, c)]
            if unlisted:
                self.repo.prune_commits(unlisted, reason="retention")
        return hidden

    def unprune(self, branch: str, commit: str) -> bool:
        """List a pruned checkpoint again. Raises PrunedCommitError when gc already deleted
        its weights."""
        with self.repo.write_lock(), self.db.transaction() as tx:  # lock order: as commits
            self.repo.unprune_commits([commit])
            return (
                tx.execute(
                    "UPDATE training_checkpoints SET pruned_at=NULL WHERE branch=? AND commit_id=?",
                    (branch, commit),
                ).rowcount
                > 0
            )

    @staticmethod
    def _listed(tx: Any, commit: str) -> bool:
        return (
            tx.execute(
                "SELECT 1 FROM training_checkpoints WHERE commit_id=? AND pruned_at IS NULL "
                "LIMIT 1",
                (commit,),
            ).fetchone()
            is not None
        )

    def pruned_commits(self, branch: str | None = None) -> set[str]:
        """Commits retention pruned (on `branch`, or anywhere)."""
        if branch is None:
            rows = self.db.query(
                "SELECT commit_id FROM training_checkpoints WHERE pruned_at IS NOT NULL"
            )
        else:
            rows = self.db.query(
                "SELECT commit_id FROM training_checkpoints WHERE pruned_at IS NOT NULL "
                "AND branch=?",
                (branch,),
            )
        return {r[0] for r in rows}


def collect_pruned(repo: Repository, config: CheckpointConfig) -> GCResult | None:
    """After retention pruned checkpoints: run `repo.gc()` when `config.auto_gc` (their weights
    are freed now instead of at the next `coral gc`). Returns the GCResult, or None."""
    if not config.auto_gc:
        return None
    return repo.gc()


def _finite(metrics: dict[str, float]) -> dict[str, Any]:
    return {k: (v if math.isfinite(v) else repr(v)) for k, v in metrics.items()}


def _metric(info: CheckpointInfo, name: str) -> float | None:
    v = info.metrics.get(name)
    try:
        f = float(v) if v is not None else None
    except (TypeError, ValueError):
        return None
    return f if f is not None and not math.isnan(f) else None


def best_checkpoint(
    infos: list[CheckpointInfo], metric: str, mode: str = "min"
) -> CheckpointInfo | None:
    """The checkpoint with the best value of `metric` (the earliest among equals)."""
    scored = [(v, i) for i, info in enumerate(infos) if (v := _metric(info, metric)) is not None]
    if not scored:
        return None
    sign = 1.0 if mode == "min" else -1.0
    return infos[min(scored, key=lambda s: (sign * s[0], s[1]))[1]]


def select_retained(infos: list[CheckpointInfo], config: CheckpointConfig) -> set[str]:
    """Commits the retention rules keep among `infos` (oldest first); the rest may be pruned."""
    if not infos or not config.has_retention:
        return {i.commit for i in infos}
    keep = {infos[-1].commit}  # the newest: what a resume needs
    if config.keep_last_n:
        keep.update(i.commit for i in infos[-config.keep_last_n :])
    if config.keep_every_k:
        keep.update(i.commit for i in infos if i.step % config.keep_every_k == 0)
    metric = config.metric_for_best
    if config.keep_best_n and metric:
        sign = 1.0 if config.mode == "min" else -1.0
        scored = [
            (sign * v, n, i.commit)
            for n, i in enumerate(infos)
            if (v := _metric(i, metric)) is not None
        ]
        keep.update(c for _, _, c in sorted(scored)[: config.keep_best_n])
    return keep
