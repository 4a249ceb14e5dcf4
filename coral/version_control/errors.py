"""Version-control errors beyond the core hierarchy in `coral.errors` (all `CoralError`s)."""

from __future__ import annotations

from coral.errors import CoralError, ObjectNotFoundError


class RefExistsError(CoralError):
    default_hint = "pick another name, or delete the existing one first"


class DirtyStagingError(CoralError):
    default_hint = (
        "commit the staged changes, drop them with Repository.unstage(), or pass force=True"
    )


class WeightNotFoundError(CoralError, LookupError):
    default_hint = (
        "list the weights of a commit with `coral show REF` or Repository.list_weights(ref)"
    )


class BranchNotMergedError(CoralError):
    default_hint = "merge it first, or delete it anyway with force=True (`coral branch -D`)"


class CurrentBranchError(CoralError):
    default_hint = "check out another branch first"


class PrunedCommitError(ObjectNotFoundError):
    """A pruned commit's weights were deleted by `gc` (the commit itself stays in the history)."""

    default_hint = (
        "a pruned commit keeps its weights only until `coral gc`; to keep one, unprune it before "
        "gc (Repository.unprune_commits, CheckpointManager.unprune) or tag it"
    )
