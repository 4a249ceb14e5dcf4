"""Coral's error hierarchy: every user-facing failure is a `CoralError` with a hint."""

from __future__ import annotations


class CoralError(Exception):
    """Base class for errors a user can act on; `hint` says what to do next."""

    default_hint: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class NotARepositoryError(CoralError):
    default_hint = "run `coral init` here, or pass the path of an existing repository"


class RepositoryExistsError(CoralError):
    default_hint = "open it with Repository(path) instead of initialising it again"


class FormatVersionError(CoralError):
    default_hint = "upgrade Coral to read this repository"


class RefNotFoundError(CoralError):
    default_hint = "list what exists with `coral branch`, `coral tag` or `coral log`"


class AmbiguousRefError(CoralError):
    default_hint = "use more characters of the hash"


class InvalidNameError(CoralError):
    default_hint = (
        "names may use letters, digits and . _ - / but no '..', leading '/', or control characters"
    )


class ObjectNotFoundError(CoralError):
    default_hint = (
        "check the hash; if the object belongs here, `coral fsck` lists what is missing: "
        "copy it back from a backup of .coral/objects"
    )


class CorruptObjectError(CoralError):
    """An object's bytes no longer hash to its name (or cannot be decoded)."""

    default_hint = (
        "run `coral fsck` for a full report; replace the damaged file with a good copy from a "
        "backup of .coral/objects"
    )

    def __init__(self, object_id: str, path: str | None, reason: str, hint: str | None = None):
        where = f" ({path})" if path else ""
        super().__init__(f"corrupt object {object_id}{where}: {reason}", hint)
        self.object_id = object_id
        self.path = path
        self.reason = reason


class UnsupportedDtypeError(CoralError):
    default_hint = "convert the tensor to a numeric dtype that safetensors supports"


class ShapeMismatchError(CoralError):
    default_hint = "tensors must have the same shape and dtype for this operation"


class InvalidFileError(CoralError):
    default_hint = "the file is truncated or not in the format its name says; re-export it"


class UnsafeFileError(CoralError):
    default_hint = "only load files you trust; convert the checkpoint to safetensors"


class NothingToCommitError(CoralError):
    default_hint = "stage weights first with `coral add` or Repository.add_all_weights"


class MergeConflictError(CoralError):
    default_hint = "pick a strategy: --strategy ours|theirs|average|weighted|soup|ties|dare-ties"


class ConcurrentUpdateError(CoralError):
    default_hint = "another process moved the branch first; reload and try again"


class RemoteError(CoralError):
    default_hint = "check the remote's URL, the network and your credentials"


class DatabaseDamagedError(CoralError):
    """The repository database (`.coral/coral.db`) cannot be read: damaged, or not a database."""

    default_hint = (
        "run `coral fsck --repair`: it moves the damaged file aside (never deleting it) and "
        "rebuilds refs from what it can read, the reflog and the commit objects"
    )


class DiskFullError(CoralError):
    """A write failed for lack of space; the message names the file and the free space."""

    default_hint = "free disk space (`coral gc` removes unreachable objects), then retry"
