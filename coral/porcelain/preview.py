"""`coral preview REF`: what `coral checkout REF` would change, with nothing moved or written.

Built on `compare.checkout_preview` (the terminal browser's checkout screen shows the same);
this adds the diff engine's `DiffResult` (identical tensors and metadata-only changes counted),
which the CLI tables and `--json` print. Only trees are read: no tensor values, no writes.

>>> p = preview_checkout(repo, "v1")
>>> p.diff.counts()["changed"], p.files, p.blocked
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coral.porcelain.compare import CheckoutPreview, checkout_preview, tensor_select
from coral.version_control.diff import DiffResult, diff_result
from coral.version_control.repository import Repository
from coral.version_control.writer import first_line


@dataclass
class Preview:
    """Where HEAD would go, the tensors and model files that would change (HEAD to REF),
    and the staged changes that would stop the checkout."""

    ref: str
    target: str  # the commit REF names
    subject: str
    branch: str | None  # the branch HEAD would attach to; None: HEAD would be detached
    head: str | None  # HEAD's commit now
    diff: DiffResult
    files: dict[str, str] = field(default_factory=dict)  # path -> added / removed / changed
    staged: list[tuple[str, str]] = field(default_factory=list)
    training_state_hidden: int = 0
    pruned: str | None = None

    @property
    def moves(self) -> bool:
        """Whether HEAD would point at another commit."""
        return self.head != self.target

    @property
    def blocked(self) -> bool:
        """Whether `coral checkout REF` would refuse (changes are staged; --force drops them)."""
        return bool(self.staged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "target": self.target,
            "subject": self.subject,
            "branch": self.branch,
            "detached": self.branch is None,
            "head": self.head,
            "moves": self.moves,
            "diff": self.diff.to_dict(),
            "files": dict(self.files),
            "staged": [{"kind": k, "name": n} for k, n in self.staged],
            "blocked": self.blocked,
            "training_state_hidden": self.training_state_hidden,
            "pruned": self.pruned,
        }


def from_checkout_preview(p: CheckoutPreview, diff: DiffResult | None = None) -> Preview:
    """The `Preview` of a checkout preview; `diff` (HEAD to the target) when already made,
    else the diff engine's view of the preview's changes."""
    head_label = (p.head or "")[:10] or "empty"
    return Preview(
        ref=p.ref,
        target=p.target.commit_hash,
        subject=first_line(p.target.message),
        branch=p.branch,
        head=p.head,
        diff=diff if diff is not None else diff_result(list(p.changes), head_label, p.ref),
        files=dict(p.files),
        staged=list(p.staged),
        training_state_hidden=p.training_state_hidden,
        pruned=p.pruned,
    )


def preview_checkout(
    repo: Repository, ref: str, *, include_training_state: bool = False
) -> Preview:
    """What checking out `ref` would change (RefNotFoundError for an unknown ref); the diff
    counts identical tensors and metadata-only changes too (trees only: no values read)."""
    p = checkout_preview(repo, ref, include_training_state=include_training_state)
    diff = None
    if p.head is not None:
        select = tensor_select(None, include_training_state)
        diff = repo.diff(p.head, p.target.commit_hash, norms=False, select=select)
        diff.from_ref, diff.to_ref = p.head[:10], ref
    return from_checkout_preview(p, diff)
