"""`coral optimize --apply PROFILE`: repack a repository under a settings profile.

`apply_profile` re-encodes every stored tensor with the profile's settings into a scratch store
under `.coral/tmp/`, verifies each one against its BLAKE3 name, installs the result as one new
pack (`coral.storage.reencode`), verifies the repository's copy, writes the settings into
`.coral/config.toml`, and collects the chunks nothing needs any more. It holds the repository
lock exclusively throughout and needs room for a second copy of the tensors while it runs; a
kill at any point leaves every tensor readable (the settings are written once the new pack
is in place and verified).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coral.porcelain.optimize import (
    current_settings,
    measure,
    profile_target,
    store_config,
    threshold_of,
)
from coral.porcelain.optimize_trials import Trial, lineages
from coral.storage.pack_store import PackStore
from coral.storage.reencode import (
    Item,
    drop_unused_chunks,
    encode_into,
    install,
    scratch_store,
    verify_all,
)
from coral.version_control.progress import Phase, Progress
from coral.version_control.repo_config import read_config
from coral.version_control.repository import Repository


@dataclass
class OptimizeApply:
    """`coral optimize --apply PROFILE`: the settings written, and the store before and after
    (with dry_run: nothing changed, `estimated_bytes` from a trial encode)."""

    profile: str
    settings: dict[str, Any]
    changes: dict[str, tuple[Any, Any]]  # key -> (now, after)
    dry_run: bool
    tensors: int
    bytes_before: int  # pack and loose files of the store
    bytes_after: int
    estimated_bytes: int | None = None  # dry run: the stored tensors' estimate
    stored_bytes: int | None = None  # dry run: the stored tensors now
    freed_bytes: int = 0
    verified: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "settings": dict(self.settings),
            "changes": {k: {"from": a, "to": b} for k, (a, b) in self.changes.items()},
            "dry_run": self.dry_run,
            "tensors": self.tensors,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "estimated_bytes": self.estimated_bytes,
            "stored_bytes": self.stored_bytes,
            "freed_bytes": self.freed_bytes,
            "verified": self.verified,
        }


def store_bytes(store: PackStore) -> int:
    """Bytes of the store's files on disk: packs and loose objects (not `tmp/`)."""
    return sum(
        f.stat().st_size
        for f in store.root.rglob("*")
        if f.is_file() and f.relative_to(store.root).parts[0] != "tmp"
    )


def apply_profile(
    repo: Repository,
    name: str,
    *,
    dry_run: bool = False,
    sample: int | float | None = None,
    progress: Progress | None = None,
) -> OptimizeApply:
    """Repack every stored tensor under profile `name`'s settings and write them into the
    repository's config; every tensor is verified bit-exact before the old records go.
    `dry_run`: change nothing; estimate the result by trial-encoding a sample."""
    settings = profile_target(repo, name)
    current = current_settings(repo)
    after = {**current, **settings}
    config = store_config(after)
    threshold_of(after)
    changes = {k: (current.get(k), v) for k, v in settings.items() if current.get(k) != v}
    store = repo.store
    store.wait_for_maintenance()
    before = store_bytes(store)
    result = OptimizeApply(name, settings, changes, dry_run, len(store.list()), before, before)
    if dry_run:
        estimate = _estimate_profile(repo, name, settings, sample, progress)
        result.stored_bytes, result.estimated_bytes = estimate
        return result
    with repo.lock.exclusive():
        store.wait_for_maintenance()
        items = _all_items(repo)
        result.tensors = len(items)
        for stale in (repo.coral_dir / "tmp").glob("optimize-*"):  # a killed apply's
            shutil.rmtree(stale, ignore_errors=True)
        scratch_dir = repo.coral_dir / "tmp" / f"optimize-{uuid.uuid4().hex[:12]}"
        try:
            scratch = scratch_store(scratch_dir, config)
            try:
                phase = Phase(progress, "re-encoding tensors", len(items))
                encode_into(scratch, store.load, items, phase.advance)
                phase.finish()
                phase = Phase(progress, "verifying the new copy", len(items))
                verify_all(scratch, [i.tensor_id for i in items], phase.advance)
                phase.finish()
                install(scratch, store)
            finally:
                scratch.close()
        finally:
            shutil.rmtree(scratch_dir, ignore_errors=True)
        fresh = PackStore(store.root, config)  # what is on disk now, nothing cached
        try:
            phase = Phase(progress, "verifying the repository", len(items))
            verify_all(fresh, [i.tensor_id for i in items], phase.advance)
            phase.finish()
            result.verified = len(items)
            write_settings(repo, settings)
            result.freed_bytes = drop_unused_chunks(fresh)
        finally:
            fresh.close()
        store.index.refresh(force=True)
        store.config = config  # this open repository writes with the new settings too
        repo.writer.close()  # its similarity index reopens with the new threshold
    result.bytes_after = store_bytes(store)
    return result


def _estimate_profile(
    repo: Repository,
    name: str,
    settings: dict[str, Any],
    sample: int | float | None,
    progress: Progress | None,
) -> tuple[int, int]:
    """(stored bytes of the tensors now, their estimate under the profile `settings`)."""
    current = current_settings(repo)
    after = {**current, **settings}
    trials = [
        Trial("", None, store_config(current), threshold_of(current)),
        Trial("profile", name, store_config(after), threshold_of(after)),
    ]
    m = measure(repo, trials, sample, progress)
    return sum(m.stored.values()), sum(m.estimates[trials[1]].values())


def _all_items(repo: Repository) -> list[Item]:
    """Every stored tensor, each against the previous version of its name (history order),
    then those no commit names (staged, unreachable) on their own."""
    items: list[Item] = []
    for lin in lineages(repo):
        prev = None
        for tid in lin.versions:
            items.append(Item(tid, prev))
            prev = tid
    listed = {i.tensor_id for i in items}
    stored = set(repo.store.list())
    items = [i for i in items if i.tensor_id in stored]
    items += [Item(t, None) for t in sorted(stored - listed)]
    return items


def write_settings(repo: Repository, settings: Mapping[str, Any]) -> None:
    """Write flattened settings into `.coral/config.toml` (comments and other keys stay) and
    re-read the repository's settings."""
    from coral.porcelain.config import set_value

    for key, value in settings.items():
        set_value(repo, key, value)
    config = read_config(repo.config_path)
    repo.config.clear()
    repo.config.update(config)
