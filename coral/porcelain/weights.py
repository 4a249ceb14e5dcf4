"""The tensors a diff side names: a commit, or `staged` (what the next commit would hold)."""

from __future__ import annotations

from collections.abc import Callable

from coral.core.weight_tensor import WeightTensor
from coral.version_control.repository import Repository
from coral.version_control.staging import apply_changes

STAGED = "staged"  # the label `Repository.diff` gives HEAD plus the staging area


def weights_at(
    repo: Repository, ref: str, select: Callable[[str], bool] | None = None
) -> dict[str, WeightTensor]:
    """The tensors of `ref` (lazy: values are read on first touch), those `select` keeps;
    `staged` means HEAD with the staged changes applied."""
    if ref == STAGED:
        tree = apply_changes(repo.get_tree("HEAD"), repo.staged_changes())
        entries = {n: e for n, e in tree.entries.items() if select is None or select(n)}
        return {n: repo.load_entry(e, lazy=True) for n, e in entries.items()}
    weights = repo.get_all_weights(ref, lazy=True)
    return {n: w for n, w in weights.items() if select is None or select(n)}
