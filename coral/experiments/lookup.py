"""Which experiments produced a commit, and which one is active: read-only lookups that need no
tracker (what `coral log` and `coral show` ask)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from coral.experiments import queries
from coral.experiments.repo_link import RepoArg, db_path_of, open_repo
from coral.experiments.store import ExperimentStore
from coral.experiments.types import Experiment


def experiment_for_commit(repo: RepoArg, commit_hash: str) -> list[Experiment]:
    """The experiments that produced a commit, newest first.

    `commit_hash` is anything the repository resolves (full or short hash, branch, tag, HEAD~n)
    or a prefix of a linked commit. Metric points are not loaded (each experiment's `summary`
    has per-metric count, min/max and last). Returns [] where no experiment was ever tracked.
    """
    repository = open_repo(repo)
    db_path = db_path_of(repository)
    if not ExperimentStore.exists_in(db_path):
        return []
    text = str(commit_hash).strip()
    with contextlib.suppress(Exception):  # else: a prefix of a linked commit
        text = str(repository.resolve_ref(text))
    store = ExperimentStore(db_path)
    try:
        ids = store.experiments_for_commit(text)
        return list(queries.load_ids(store, ids).values())
    finally:
        store.close()


def experiments_for_commits(
    repo: RepoArg, commit_hashes: Iterable[str]
) -> dict[str, list[Experiment]]:
    """Full commit hash -> the experiments that produced it, for many commits at once (what
    `coral log` shows); commits no experiment is linked to are left out."""
    db_path = db_path_of(open_repo(repo))
    hashes = list(commit_hashes)
    if not hashes or not ExperimentStore.exists_in(db_path):
        return {}
    store = ExperimentStore(db_path)
    try:
        links = store.experiments_for_commits(hashes)
        ids = list(dict.fromkeys(e for eids in links.values() for e in eids))
        loaded = queries.load_ids(store, ids)
        if not loaded:
            return {}
        order = {eid: i for i, eid in enumerate(loaded)}  # newest first
        return {
            c: sorted((loaded[e] for e in eids), key=lambda x: order[x.experiment_id])
            for c, eids in links.items()
        }
    finally:
        store.close()


def active_experiment(repo: RepoArg) -> Experiment | None:
    """The repository's active experiment (the one `coral experiment log` writes to), or None."""
    store = ExperimentStore(db_path_of(open_repo(repo)))
    try:
        active = store.get_active()
        if active is None:
            return None
        eid = queries.resolve_id(store, active)
        return queries.load(store, store.rows("experiment_id=?", (eid,)), False)[0]
    finally:
        store.close()
