"""Pieces of `coral diff`: model-file changes shown as text."""

from __future__ import annotations

import difflib

from rich.console import Console
from rich.markup import escape

from coral.version_control.objects import FILE, Tree
from coral.version_control.repository import Repository

MAX_DIFF_LINES = 40  # per file; the rest is summarised


def file_changes(old: Tree, new: Tree) -> dict[str, str]:
    """Model files that differ: path -> added / removed / changed."""
    out: dict[str, str] = {}
    for path in sorted(set(old.files) | set(new.files)):
        a, b = old.files.get(path), new.files.get(path)
        if a == b:
            continue
        out[path] = "added" if a is None else "removed" if b is None else "changed"
    return out


def print_file_changes(
    console: Console, repo: Repository, from_ref: str, to_ref: str | None
) -> None:
    """A unified diff of each changed text file (binary ones by size)."""
    old = repo.get_tree(from_ref)
    new = repo.get_tree(to_ref) if to_ref else _staged_tree(repo)
    changes = file_changes(old, new)
    if not changes:
        return
    console.print(f"model files: {len(changes)} changed")
    for path, kind in changes.items():
        before = _text(repo, old, path)
        after = _text(repo, new, path)
        if before is None or after is None:
            sizes = [t.files[path].size if path in t.files else 0 for t in (old, new)]
            console.print(f"  {kind} {escape(path)} (binary, {sizes[0]} -> {sizes[1]} bytes)")
            continue
        lines = list(
            difflib.unified_diff(
                before.splitlines(),
                after.splitlines(),
                f"a/{path}",
                f"b/{path}",
                lineterm="",
                n=1,
            )
        )
        for line in lines[:MAX_DIFF_LINES]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
            text = escape(line)
            console.print(f"[{style}]{text}[/{style}]" if style else text, soft_wrap=True)
        if len(lines) > MAX_DIFF_LINES:
            console.print(f"  ... {len(lines) - MAX_DIFF_LINES} more lines")


def _text(repo: Repository, tree: Tree, path: str) -> str | None:
    entry = tree.files.get(path)
    if entry is None:
        return ""
    try:
        return repo.store.get_blob(FILE, entry.blob_id).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _staged_tree(repo: Repository) -> Tree:
    from coral.version_control.staging import apply_changes

    head = repo.get_tree("HEAD") if repo.head_commit() else Tree()
    return apply_changes(head, repo.staging.changes(), repo.staging.file_changes())
