"""`coral stash`: put what is staged aside, list, show, apply, pop and drop it.

The staging area (`repo.staging`: the shared one of the CLI, or a `Repository` object's own)
moves into a stash entry and back in one transaction each way, so a change is never lost
between the two (`coral.version_control.stash`).

>>> entry = stash_push(repo, "half-done head")
>>> [e.ref for e in stash_list(repo)]
['stash@{0}']
>>> stash_pop(repo).entry.message
'half-done head'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from coral.errors import CoralError, ObjectNotFoundError
from coral.porcelain.compare import _file_changes
from coral.version_control.diff import DiffResult, Progress, diff_trees
from coral.version_control.objects import FileEntry, Tree, TreeEntry
from coral.version_control.repository import Repository
from coral.version_control.staging import StagedChange, apply_changes
from coral.version_control.stash import StashEntry, StashStore
from coral.version_control.writer import first_line

_REF = re.compile(r"^(?:stash@\{(\d+)\}|(\d+))$")
SHOWN_CONFLICTS = 5


class StashError(CoralError):
    default_hint = "`coral stash list` shows the entries"


@dataclass
class StashSummary:
    """A stash entry as a list shows it: what it holds, counted."""

    entry: StashEntry
    tensors: int
    files: int

    def to_dict(self) -> dict[str, Any]:
        d = self.entry.to_dict()
        del d["tensors"], d["files"]
        return {**d, "tensor_changes": self.tensors, "file_changes": self.files}


@dataclass
class StashShow:
    """An entry's changes against the commit it was stashed on (the diff engine's verdicts)."""

    entry: StashEntry
    diff: DiffResult
    files: dict[str, str] = field(default_factory=dict)  # path -> added / removed / changed

    def to_dict(self) -> dict[str, Any]:
        return {**self.entry.to_dict(), "diff": self.diff.to_dict(), "file_changes": self.files}


@dataclass
class StashApplied:
    """What `stash_apply` / `stash_pop` staged again, and whether the entry was dropped."""

    entry: StashEntry
    dropped: bool
    staged: int  # tensor and file changes staged (those equal to HEAD now are not)
    head_moved: bool  # HEAD is no longer the commit the changes were stashed on

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.entry.to_dict(),
            "dropped": self.dropped,
            "staged": self.staged,
            "head_moved": self.head_moved,
        }


def parse_stash_ref(text: str | int | None) -> int:
    """`0`, `2`, `stash@{2}` -> 2; StashError for anything else."""
    if text is None:
        return 0
    if isinstance(text, int):
        if text < 0:
            raise StashError(f"bad stash reference {text!r}", hint="use 0, 1, ... or stash@{N}")
        return text
    m = _REF.match(text.strip())
    if m is None:
        raise StashError(
            f"bad stash reference {text!r}", hint="use a number or stash@{N}, e.g. stash@{0}"
        )
    return int(m.group(1) or m.group(2))


def _entry(store: StashStore, ref: str | int | None, conn: Any = None) -> StashEntry:
    index = parse_stash_ref(ref)
    entry = store.entry(index, conn)
    if entry is not None:
        return entry
    count = len(store.entries(conn))
    if count == 0:
        raise StashError("no stash entries", hint="`coral stash` saves the staged changes")
    raise StashError(
        f"no stash entry stash@{{{index}}}",
        hint=f"there {'is' if count == 1 else 'are'} {count} "
        f"(stash@{{0}}..stash@{{{count - 1}}}); `coral stash list` shows them",
    )


def _head_tree(repo: Repository, commit: str | None) -> Tree:
    return repo.read_tree(repo.read_commit(commit).tree_id) if commit else Tree()


def _default_message(repo: Repository, branch: str | None, head: str | None) -> str:
    where = branch or "detached HEAD"
    if head is None:
        return f"WIP on {where} (no commits yet)"
    return f"WIP on {where}: {head[:10]} {first_line(repo.read_commit(head).message)}"


def stash_push(repo: Repository, message: str | None = None) -> StashEntry:
    """Move everything staged (tensors and model files) into a new stash entry, stash@{0};
    the staging area is left empty. StashError when nothing is staged."""
    store = StashStore(repo.database)
    head = repo.head()
    if repo.staging.drop_if_unchanged(_head_tree(repo, head.commit)):
        raise StashError(
            "nothing to stash: no changes are staged",
            hint="stage a checkpoint with `coral add FILE` first",
        )
    with repo.write_lock(), repo.database.transaction() as tx:
        head = repo.refs.head(tx)
        changes = repo.staging.changes(tx)
        files = repo.staging.file_changes(tx)
        text = message if message and message.strip() else None
        text = text or _default_message(repo, head.branch, head.commit)
        tensors = {n: c.entry for n, c in changes.items()}
        entry_id = store.save(tx, text, head.branch, head.commit, tensors, files)
        repo.staging.unstage(tx)
        repo.staging.unstage_files(tx)
        entry = store.entry(0, tx)
    assert entry is not None and entry.id == entry_id
    return entry


def stash_list(repo: Repository) -> list[StashSummary]:
    """Every entry, newest first (stash@{0} first), with how many changes each holds."""
    store = StashStore(repo.database)
    with repo.database.snapshot() as conn:
        counts = store.counts(conn)
        return [StashSummary(e, *counts.get(e.id, (0, 0))) for e in store.entries(conn)]


def stash_show(
    repo: Repository, ref: str | int | None = None, *, progress: Progress | None = None
) -> StashShow:
    """Entry `ref` (default stash@{0}) compared with the commit it was stashed on: the diff
    engine's verdict on each tensor (with norms) and the model files it changes."""
    entry = _entry(StashStore(repo.database), ref)
    try:
        base = _head_tree(repo, entry.head)
    except ObjectNotFoundError:
        base = Tree()
    changes = {n: StagedChange(n, e, entry.created_at) for n, e in entry.tensors.items()}
    new = apply_changes(base, changes, entry.files)
    old_view = Tree({n: base.entries[n] for n in entry.tensors if n in base.entries})
    new_view = Tree({n: new.entries[n] for n in entry.tensors if n in new.entries})
    label = (entry.head or "")[:10] or "empty"
    result = diff_trees(
        old_view,
        new_view,
        lambda e: repo.store.load(e.tensor_id).data,
        label,
        entry.ref,
        progress=progress,
    )
    files = _file_changes(base, new)
    return StashShow(entry, result, files)


def _conflicts(
    staged: dict[str, StagedChange],
    staged_files: dict[str, FileEntry | None],
    entry: StashEntry,
) -> list[str]:
    """Names staged now that the entry would change differently."""
    out = []
    for name, stashed in entry.tensors.items():
        now = staged.get(name)
        if now is not None and not _same(now.entry, stashed):
            out.append(name)
    for path, f in entry.files.items():
        if path in staged_files and staged_files[path] != f:
            out.append(path)
    return sorted(out)


def _same(a: TreeEntry | None, b: TreeEntry | None) -> bool:
    return (a is None and b is None) or (a is not None and a.same_content(b))


def stash_apply(
    repo: Repository, ref: str | int | None = None, *, drop: bool = False
) -> StashApplied:
    """Stage entry `ref` (default stash@{0}) again, on whatever HEAD is now; with `drop` also
    forget the entry (`stash_pop`). Refuses, changing nothing, when something staged now
    conflicts with it (the same name staged differently)."""
    store = StashStore(repo.database)
    with repo.write_lock(), repo.database.transaction() as tx:
        entry = _entry(store, ref, tx)
        head = repo.refs.head(tx)
        conflicts = _conflicts(repo.staging.changes(tx), repo.staging.file_changes(tx), entry)
        if conflicts:
            shown = ", ".join(conflicts[:SHOWN_CONFLICTS])
            more = (
                f" ... and {len(conflicts) - SHOWN_CONFLICTS} more"
                if len(conflicts) > SHOWN_CONFLICTS
                else ""
            )
            raise StashError(
                f"cannot apply {entry.ref}: {len(conflicts)} staged change(s) conflict with it: "
                f"{shown}{more}",
                hint="commit the staged changes or drop them with `coral reset`, then apply "
                f"again (the stash is kept: {entry.ref})",
            )
        base = _head_tree(repo, head.commit)
        repo.staging.stage(tx, [e for e in entry.tensors.values() if e is not None], base)
        for name, e in entry.tensors.items():
            if e is None:
                repo.staging.stage_removal(tx, name, base)
        repo.staging.stage_files(tx, [f for f in entry.files.values() if f is not None], base)
        for path, f in entry.files.items():
            if f is None:
                repo.staging.stage_file_removal(tx, path, base)
        now, now_files = repo.staging.changes(tx), repo.staging.file_changes(tx)
        staged = sum(n in now for n in entry.tensors) + sum(p in now_files for p in entry.files)
        if drop:
            store.delete(tx, entry.id)
    return StashApplied(entry, drop, staged, head.commit != entry.head)


def stash_pop(repo: Repository, ref: str | int | None = None) -> StashApplied:
    """Apply entry `ref` (default stash@{0}) and drop it, in one transaction."""
    return stash_apply(repo, ref, drop=True)


def stash_drop(repo: Repository, ref: str | int | None = None) -> StashEntry:
    """Forget entry `ref` (default stash@{0}); its tensors become garbage for `coral gc`."""
    store = StashStore(repo.database)
    with repo.database.transaction() as tx:
        entry = _entry(store, ref, tx)
        store.delete(tx, entry.id)
    return entry
