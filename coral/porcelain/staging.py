"""The staging area as a browser shows it: what is staged, checkpoint files that could be, and
the operations behind its keys (stage a file, stage a removal, unstage, commit)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral.errors import CoralError, NothingToCommitError
from coral.porcelain.add import AddResult, add_paths
from coral.version_control.repository import Repository

CHECKPOINT_SUFFIXES = (
    ".safetensors",
    ".pt",
    ".pth",
    ".bin",
    ".ckpt",
    ".npz",
    ".onnx",
    ".keras",
)
_SKIP_DIRS = {".coral", ".git", ".venv", "venv", "node_modules", "__pycache__"}
NEW, MODIFIED, DELETED = "new", "modified", "deleted"


@dataclass(frozen=True)
class StagedItem:
    """One staged change: a tensor (new / modified / deleted) or a model file."""

    kind: str  # NEW, MODIFIED, DELETED; for files "file added" / "file modified" / ...
    name: str
    is_file: bool = False


@dataclass
class StagingView:
    """Where HEAD is, what is staged, and checkpoint files near the repository."""

    branch: str | None
    head: str | None
    staged: list[StagedItem] = field(default_factory=list)
    candidates: list[Path] = field(default_factory=list)

    @property
    def tensors(self) -> list[StagedItem]:
        return [s for s in self.staged if not s.is_file]


def checkpoint_candidates(root: Path, *, depth: int = 2, limit: int = 200) -> list[Path]:
    """Checkpoint files (by suffix) and model folders (a `config.json` beside weights) under
    `root`, at most `depth` folders down, hidden folders and `.coral` skipped; sorted."""
    found: list[Path] = []

    def walk(folder: Path, level: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        names = {e.name for e in entries}
        if (
            level > 0
            and "config.json" in names
            and any(n.endswith(CHECKPOINT_SUFFIXES) for n in names)
        ):
            found.append(folder)
        for e in entries:
            if len(found) >= limit:
                return
            if e.is_dir(follow_symlinks=False):
                if level < depth and e.name not in _SKIP_DIRS and not e.name.startswith("."):
                    walk(Path(e.path), level + 1)
            elif e.name.lower().endswith(CHECKPOINT_SUFFIXES) or e.name.endswith(
                ".safetensors.index.json"
            ):
                found.append(Path(e.path))

    walk(Path(root), 0)
    return sorted(found)[:limit]


def staging_view(repo: Repository, root: Path | None = None) -> StagingView:
    """The staged changes against HEAD, and checkpoint files under `root` (the repository's
    folder by default) that `stage_path` could stage."""
    st = repo.status()
    view = StagingView(st.branch, st.head)
    for kind, names in ((NEW, st.added), (MODIFIED, st.modified), (DELETED, st.removed)):
        view.staged.extend(StagedItem(kind, n) for n in names)
    view.staged.extend(StagedItem(f"file {k}", p, True) for p, k in sorted(st.files.items()))
    view.candidates = checkpoint_candidates(root or repo.path)
    return view


def stage_path(repo: Repository, path: Path, *, replace: bool = False) -> AddResult:
    """Stage a checkpoint file or model folder (what `coral add PATH` does)."""
    return add_paths(repo, [Path(path)], replace=replace)


def stage_removal(repo: Repository, names: Iterable[str]) -> int:
    """Stage the removal of HEAD's tensors `names` (what `coral rm` does)."""
    n = 0
    for name in names:
        repo.remove_weight(name)
        n += 1
    return n


def unstage(repo: Repository, names: Iterable[str] | None = None) -> int:
    """Drop staged changes of `names`, or all of them (what `coral reset` does)."""
    return repo.unstage(list(names) if names is not None else None)


def commit_staged(repo: Repository, message: str, metrics: dict[str, Any] | None = None) -> str:
    """Commit what is staged (refusing, as `coral commit` does, a commit that changes nothing)."""
    if not message.strip():
        raise CoralError("empty commit message", hint="write a message")
    if repo.head_commit() is not None and repo.status().is_clean:
        where = repo.current_branch or "detached HEAD"
        raise NothingToCommitError(f"nothing to commit on {where}", hint="stage something first")
    return repo.commit(message, metadata={"metrics": metrics} if metrics else None)
