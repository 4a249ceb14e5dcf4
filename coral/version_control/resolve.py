"""Turning a ref expression into a commit hash: branches, tags, remote-tracking refs, short
hashes, HEAD, and `~N` / `^N` steps (`HEAD~3`, `main^2`, `origin/main`, `v1.0^^`)."""

from __future__ import annotations

from collections.abc import Callable

from coral.core.hashing import is_hash
from coral.errors import AmbiguousRefError, RefNotFoundError
from coral.storage.pack_store import PackStore
from coral.version_control.database import Database
from coral.version_control.objects import COMMIT, Commit
from coral.version_control.refnames import HEAD, parse_ref
from coral.version_control.refs import RefStore
from coral.version_control.remote_refs import resolve_tracking

MIN_SHORT_HASH = 4


class RefResolver:
    """Resolves refs against one repository's refs, tracking refs and commits."""

    def __init__(
        self,
        refs: RefStore,
        database: Database,
        store: PackStore,
        read_commit: Callable[[str], Commit],
    ) -> None:
        self.refs = refs
        self.database = database
        self.store = store
        self.read_commit = read_commit

    def resolve(self, ref: str) -> str:
        """Full commit hash of `ref`: branch, tag, full or unique short hash (≥4), HEAD,
        and any of them followed by ~N, ^ or ^N (e.g. `HEAD~3`, `main^2`, `v1.0^^`)."""
        if not isinstance(ref, str):
            raise RefNotFoundError(f"a ref must be a string, not {type(ref).__name__}")
        expr = parse_ref(ref)
        commit = self._resolve_base(expr.base, ref)
        for step in expr.steps:
            if step.op == "~":
                for i in range(step.n):
                    parents = self.read_commit(commit).parent_hashes
                    if not parents:
                        raise RefNotFoundError(
                            f"{ref}: {commit[:10]} has no parent (went back {i} of {step.n})",
                            hint="the history is shorter than that; see `coral log`",
                        )
                    commit = parents[0]
            elif step.n > 0:
                parents = self.read_commit(commit).parent_hashes
                if len(parents) < step.n:
                    raise RefNotFoundError(
                        f"{ref}: {commit[:10]} has {len(parents)} parent(s), not {step.n}",
                        hint="^2 names the second parent of a merge commit",
                    )
                commit = parents[step.n - 1]
        return commit

    def _resolve_base(self, base: str, ref: str) -> str:
        if base == HEAD:
            head = self.refs.head()
            if head.commit is None:
                raise RefNotFoundError(
                    f"HEAD has no commits yet (branch {head.branch!r} is unborn)",
                    hint="stage weights and commit first",
                )
            return head.commit
        for prefix in ("refs/heads/", "heads/"):
            if base.startswith(prefix):
                tip = self.refs.branch_tip(base[len(prefix) :])
                if tip:
                    return tip
        for prefix in ("refs/tags/", "tags/"):
            if base.startswith(prefix):
                tag = self.refs.get_tag(base[len(prefix) :])
                if tag:
                    return tag.commit_hash
        tip = self.refs.branch_tip(base)
        if tip is not None:
            return tip
        tag = self.refs.get_tag(base)
        if tag is not None:
            return tag.commit_hash
        tracked = resolve_tracking(self.database, base) if "/" in base else None
        if tracked is not None:
            return tracked
        lowered = base.lower()
        if all(c in "0123456789abcdef" for c in lowered) and len(lowered) >= MIN_SHORT_HASH:
            if is_hash(lowered):
                if self.store.has_blob(COMMIT, lowered):
                    return lowered
            else:
                matches = self._commits_with_prefix(lowered)
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    shown = ", ".join(m[:10] for m in matches[:5])
                    raise AmbiguousRefError(
                        f"short hash {base!r} matches {len(matches)} commits: {shown}"
                    )
        raise RefNotFoundError(f"unknown ref {ref!r}: no branch, tag or commit named {base!r}")

    def _commits_with_prefix(self, prefix: str) -> list[str]:
        return sorted(c for c in self.store.list_blobs(COMMIT) if c.startswith(prefix))
