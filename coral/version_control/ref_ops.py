"""Branches, tags and the reflog: the ref operations of `Repository` (a base class of it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from coral.errors import RefNotFoundError
from coral.storage.pack_store import PackStore
from coral.version_control import history
from coral.version_control.database import Database
from coral.version_control.errors import BranchNotMergedError, CurrentBranchError
from coral.version_control.objects import TAG, Commit, Tag
from coral.version_control.refnames import HEAD, check_name
from coral.version_control.refs import Branch, ReflogEntry, RefStore


class BranchesAndTags:
    """Creating, moving and deleting branches and tags; reading the reflog."""

    # provided by Repository
    refs: RefStore
    database: Database
    store: PackStore
    resolve_ref: Callable[[str], str]
    read_commit: Callable[[str], Commit]
    write_lock: Callable[[], AbstractContextManager[None]]
    default_author: Callable[[], str]

    @property
    def current_branch(self) -> str | None:
        """The branch HEAD is attached to (None when detached)."""
        return self.refs.head().branch

    def list_branches(self) -> list[Branch]:
        """Every branch with a commit, sorted by name (`is_current` marks HEAD's)."""
        return self.refs.list_branches()

    def create_branch(self, name: str, from_ref: str | None = None) -> Branch:
        """Create branch `name` at `from_ref` (default HEAD). Does not check it out."""
        check_name(name, "branch")
        target = self.resolve_ref(from_ref or HEAD)
        with self.database.transaction() as tx:
            self.refs.create_branch(tx, name, target, f"branch: created from {from_ref or HEAD}")
        return Branch(name, target, name == self.current_branch)

    def delete_branch(self, name: str, force: bool = False) -> str:
        """Delete branch `name`; refuses the current branch and (unless force) unmerged work.

        Returns the commit the branch pointed at (still reachable through the reflog)."""
        head = self.refs.head()
        if head.branch == name:
            raise CurrentBranchError(f"cannot delete branch {name!r}: HEAD is on it")
        tip = self.refs.branch_tip(name)
        if tip is None:
            raise RefNotFoundError(f"branch {name!r} not found")
        if not force:
            others = [
                c for r, c in self.refs.all_ref_targets().items() if r != f"refs/heads/{name}"
            ]
            if head.commit:
                others.append(head.commit)
            if not any(history.is_ancestor(self.read_commit, tip, o) for o in set(others)):
                raise BranchNotMergedError(
                    f"branch {name!r} ({tip[:10]}) is not merged into any other ref"
                )
        with self.database.transaction() as tx:
            return self.refs.delete_branch(tx, name)

    def tag_version(
        self,
        name: str,
        description: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        ref: str = HEAD,
        *,
        force: bool = False,
        tagger: str | None = None,
    ) -> Tag:
        """Create an annotated tag (description + metrics) on `ref`; kept as a "tag" object too."""
        check_name(name, "tag")
        commit = self.resolve_ref(ref)
        tag = Tag(
            name=name,
            commit_hash=commit,
            description=description,
            metrics=dict(metrics or {}),
            tagger=tagger or self.default_author(),
            created_at=time.time(),
        )
        with self.write_lock():
            tag.tag_id = self.store.put_blob(TAG, tag.encode())
            with self.database.transaction() as tx:
                self.refs.create_tag(tx, tag, force=force)
        return tag

    def adopt_tag(self, name: str, commit: str, tag_id: str | None, info: Mapping[str, Any]) -> Tag:
        """Record a tag fetched from a remote (its tag object, when stored, says it all)."""
        if tag_id and self.store.has_blob(TAG, tag_id):
            tag = Tag.decode(self.store.get_blob(TAG, tag_id), tag_id)
        else:
            tag = Tag(
                name=name,
                commit_hash=commit,
                description=info.get("description"),
                metrics=dict(info.get("metrics") or {}),
                tagger=None,
                created_at=time.time(),
            )
        with self.write_lock(), self.database.transaction() as tx:
            self.refs.create_tag(tx, tag)
        return tag

    def fast_forward(
        self, branch: str, new: str, expected: str | None, message: str, *, attach: bool = False
    ) -> None:
        """Move (or create) `branch` from `expected` to the commit `new` (compare-and-swap);
        `attach` also points HEAD at it (a first pull into an empty repository)."""
        with self.write_lock(), self.database.transaction() as tx:
            if expected is None:
                self.refs.create_branch(tx, branch, new, message)
            else:
                self.refs.update_branch(tx, branch, new, expected, message)
            if attach:
                self.refs.set_head(tx, branch=branch, message=message)

    def get_tag(self, name: str) -> Tag:
        tag = self.refs.get_tag(name)
        if tag is None:
            raise RefNotFoundError(f"tag {name!r} not found")
        return tag

    def list_tags(self) -> list[Tag]:
        """Every tag (with description and metrics), sorted by name."""
        return self.refs.list_tags()

    def delete_tag(self, name: str) -> Tag:
        with self.database.transaction() as tx:
            return self.refs.delete_tag(tx, name)

    def reflog(self, ref: str = HEAD, limit: int | None = None) -> list[ReflogEntry]:
        """Movements of `ref` ("HEAD" or a branch name), newest first."""
        return self.refs.reflog(ref, limit)

    def expire_reflog(self, older_than: float = 0.0) -> int:
        """Forget reflog entries older than `older_than` seconds (0: all), so that gc may remove
        commits only the reflog still reached; returns how many entries were dropped."""
        return self.refs.expire_reflog(time.time() - older_than)
