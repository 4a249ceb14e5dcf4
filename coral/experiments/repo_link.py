"""The repository side of experiment tracking: which database, which branch, which commits.

An experiment is linked to the commits made on its branch while it ran; `CommitLinks` reads the
repository's history and resolves refs for the tracker. It needs only what `TrackedRepository`
lists (a `Repository` has all of it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from coral.experiments.errors import ExperimentError
from coral.version_control.objects import Commit
from coral.version_control.repository import Repository

CLOCK_SLACK_S = 1.0  # commit timestamps vs. experiment start/end
LOG_SCAN_LIMIT = 10_000
_HEX = re.compile(r"^[0-9a-f]{7,64}$")


class TrackedRepository(Protocol):
    """What the tracker reads from a repository."""

    @property
    def db_path(self) -> Path: ...

    @property
    def current_branch(self) -> str | None: ...

    def log(self, max_commits: int | None = None, branch: str | None = None) -> list[Commit]: ...

    def read_commit(self, commit_hash: str) -> Commit: ...

    def resolve_ref(self, ref: str) -> str: ...


RepoArg = TrackedRepository | str | os.PathLike[str]


def open_repo(repo: RepoArg) -> TrackedRepository:
    """`repo` itself, or the repository at a path."""
    if isinstance(repo, (str, os.PathLike)):
        return Repository(repo)
    return repo


def db_path_of(repo: TrackedRepository) -> Path:
    """The SQLite database of a Repository (experiments are tables in it)."""
    return Path(repo.db_path)


class CommitLinks:
    """Branches, heads, commits and commit times of one repository, as the tracker needs them.

    Reading history never fails here: a branch without commits, or an unknown one, has none.
    """

    def __init__(self, repo: TrackedRepository) -> None:
        self.repo = repo

    def current_branch(self) -> str | None:
        try:
            return self.repo.current_branch
        except Exception:
            return None

    def history(self, branch: str | None, limit: int = LOG_SCAN_LIMIT) -> list[Commit]:
        try:
            if branch:
                return list(self.repo.log(max_commits=limit, branch=branch))
            return list(self.repo.log(max_commits=limit))
        except Exception:
            return []

    def branch_head(self, branch: str | None) -> str | None:
        history = self.history(branch, limit=1)
        return history[0].commit_hash if history else None

    def commits_during(
        self,
        branch: str | None,
        started: float | None,
        start_commit: str | None,
        ended: float,
    ) -> list[tuple[str, float | None]]:
        """(hash, time) of the commits on `branch` made after `start_commit`, between
        `started` and `ended`, oldest first."""
        if started is None:
            return []
        found: list[tuple[str, float | None]] = []
        for commit in self.history(branch):
            cid = commit.commit_hash
            if not cid:
                continue
            if cid == start_commit:
                break
            ts = commit.timestamp
            if started - CLOCK_SLACK_S <= ts <= ended + CLOCK_SLACK_S:
                found.append((cid, ts))
        found.reverse()
        return found

    def commit_time(self, commit_hash: str) -> float | None:
        try:
            return float(self.repo.read_commit(commit_hash).timestamp)
        except Exception:
            return None

    def as_commit(self, value: object) -> str | None:
        """The full hash if `value` is (a prefix of) a commit of this repository."""
        if not isinstance(value, str) or not _HEX.match(value):
            return None
        try:
            return self.full_commit(value, strict=True)
        except ExperimentError:
            return None

    def full_commit(self, commit_hash: str, strict: bool = False) -> str:
        """The full hash of a commit given any ref the repository resolves (hash, prefix, tag);
        the text itself when it resolves to nothing (ExperimentError with `strict`)."""
        text = str(commit_hash).strip()
        try:
            return str(self.repo.resolve_ref(text))
        except Exception:
            pass
        if strict:
            raise ExperimentError(f"{text} is not a commit of this repository")
        return text
