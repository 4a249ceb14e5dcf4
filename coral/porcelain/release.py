"""`coral release` and `coral releases`: semver tags (`v1.2.0`, `v1.3.0-beta.1`) on HEAD that
carry its metrics, a level proposed from what changed, and the list of releases.

A release is an annotated tag (`Repository.tag_version`) whose name is a semantic version;
its metrics are those of the commit's metadata. The next version bumps the highest final
release (`semver.next_version`); a pre-release counts up per label. Without a level, the
change since the last final release proposes one: tensors added, removed, reshaped or of
another dtype -> major; weights changed -> minor; only metadata (tensor metadata, model
files, commit metadata) -> patch.

>>> proposal = propose_release(repo)
>>> proposal.level, proposal.version, proposal.reason
('minor', Version(...), '1 tensor changed: head.weight')
>>> create_release(repo, "minor").version
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coral.errors import CoralError, NothingToCommitError
from coral.porcelain import semver
from coral.porcelain.compare import tensor_select
from coral.porcelain.semver import Version
from coral.version_control.diff import DiffResult
from coral.version_control.objects import Tag
from coral.version_control.refnames import HEAD
from coral.version_control.repository import Repository

SHOWN_NAMES = 3


class ReleaseExistsError(CoralError):
    default_hint = "`coral releases` lists them; commit a change, or pick another level"


@dataclass
class Release:
    """One release tag: its version, the commit, when, and the metrics it carries."""

    version: Version
    tag: Tag

    @property
    def name(self) -> str:
        return self.tag.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": str(self.version),
            "tag": self.tag.name,
            "commit": self.tag.commit_hash,
            "date": self.tag.created.isoformat(),
            "created_at": self.tag.created_at,
            "prerelease": self.version.is_prerelease,
            "description": self.tag.description,
            "metrics": dict(self.tag.metrics),
        }


@dataclass
class Proposal:
    """The release a change calls for: level, version, why, and against which release."""

    level: str
    version: Version
    reason: str
    previous: Release | None
    commit: str
    changes: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "version": str(self.version),
            "reason": self.reason,
            "previous": self.previous.name if self.previous else None,
            "commit": self.commit,
            "changes": {k: list(v) for k, v in self.changes.items()},
        }


@dataclass
class ReleaseResult:
    """A release made (or, with `created` False, only proposed)."""

    release: Release | None
    proposal: Proposal
    created: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.proposal.to_dict(),
            "created": self.created,
            "release": self.release.to_dict() if self.release else None,
        }


def list_releases(repo: Repository) -> list[Release]:
    """Every tag whose name is a semantic version, newest (highest) version first."""
    found = []
    for tag in repo.list_tags():
        version = semver.try_parse(tag.name)
        if version is not None:
            found.append(Release(version, tag))
    return sorted(found, key=lambda r: (r.version, r.tag.created_at), reverse=True)


def _last_final(releases: list[Release]) -> Release | None:
    return next((r for r in releases if not r.version.is_prerelease), None)


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def classify(diff: DiffResult) -> tuple[str, str, dict[str, list[str]]]:
    """(level, reason, changes by kind) of a change between two releases."""
    dtype = [n for n, c in diff.changed.items() if c.dtype_changed and not c.shape_changed]
    weights = [n for n, c in diff.changed.items() if not (c.shape_changed or c.dtype_changed)]
    changes = {
        "added": list(diff.added),
        "removed": list(diff.removed),
        "reshaped": diff.shape_changed,
        "dtype_changed": dtype,
        "changed": weights,
        "metadata_changed": list(diff.metadata_changed),
    }
    breaking = [
        f"{_count(len(changes[k]), 'tensor')} {label}: {_some(changes[k])}"
        for k, label in (
            ("added", "added"),
            ("removed", "removed"),
            ("reshaped", "reshaped"),
            ("dtype_changed", "changed dtype"),
        )
        if changes[k]
    ]
    if breaking:
        return "major", "; ".join(breaking), changes
    if weights:
        return "minor", f"{_count(len(weights), 'tensor')} changed: {_some(weights)}", changes
    return "patch", "only metadata changed (no tensor values)", changes


def propose_release(
    repo: Repository, *, pre: str | None = None, build: str | None = None
) -> Proposal:
    """The level and version that HEAD's change since the last final release calls for (the
    first release: v0.1.0). Training state (optimizer, scheduler, RNG) does not count."""
    head = repo.head_commit()
    if head is None:
        raise NothingToCommitError(
            "nothing to release: no commits yet", hint="commit a model with `coral commit` first"
        )
    releases = list_releases(repo)
    previous = _last_final(releases)
    _refuse_released(releases, head, None, pre)
    changes: dict[str, list[str]] = {}
    if previous is None:
        level, reason = "minor", "first release"
    else:
        diff = repo.diff(previous.tag.commit_hash, HEAD, norms=False, select=tensor_select())
        level, reason, changes = classify(diff)
    version = semver.next_version([r.version for r in releases], level, pre=pre, build=build)
    return Proposal(level, version, reason, previous, head, changes)


def _refuse_released(
    releases: list[Release], commit: str, version: Version | None, pre: str | None
) -> None:
    """ReleaseExistsError when `version` is taken, or `commit` is released already (as a final
    release; as a pre-release of the same label when `pre` is given)."""
    for r in releases:
        if version is not None and r.version == version:
            raise ReleaseExistsError(
                f"release {r.name} already exists (at {r.tag.commit_hash[:10]})",
                hint="`coral releases` lists them; pick another level or --pre label",
            )
    for r in releases:
        if r.tag.commit_hash != commit:
            continue
        if not r.version.is_prerelease or (pre is not None and r.version.pre_label == pre):
            raise ReleaseExistsError(
                f"release {r.name} already exists at HEAD ({commit[:10]})",
                hint="commit a change before the next release; `coral tag NAME` tags it anyway",
            )


def _target(level: str, releases: list[Release], pre: str | None, build: str | None) -> Version:
    """The version `level` names: major / minor / patch bump the last final release; a
    semantic version (`v2.0.0`) names itself."""
    if level in semver.LEVELS:
        return semver.next_version([r.version for r in releases], level, pre=pre, build=build)
    version = semver.try_parse(level)
    if version is None:
        semver.check_level(level)  # raises: neither a level nor a version
        raise AssertionError(level)
    if pre is not None or build is not None:
        raise semver.VersionError(
            f"{level} is a whole version: --pre and --build go with a level",
            hint="write the pre-release in the version (v2.0.0-rc.1), or pass a level",
        )
    return version


def create_release(
    repo: Repository,
    level: str,
    *,
    pre: str | None = None,
    build: str | None = None,
    message: str | None = None,
    proposal: Proposal | None = None,
) -> ReleaseResult:
    """Tag HEAD as the next release at `level` (major / minor / patch, or a version such as
    `v2.0.0`), with HEAD's metrics. ReleaseExistsError when that version exists or HEAD is
    released already."""
    head = repo.head_commit()
    if head is None:
        raise NothingToCommitError(
            "nothing to release: no commits yet", hint="commit a model with `coral commit` first"
        )
    releases = list_releases(repo)
    version = _target(level, releases, pre, build)
    _refuse_released(releases, head, version, pre)
    if proposal is None or str(proposal.version) != str(version):
        previous = _last_final(releases)
        proposal = Proposal(level, version, "requested", previous, head)
    commit = repo.read_commit(head)
    tag = repo.tag_version(str(version), description=message or None, metrics=commit.metrics)
    return ReleaseResult(Release(version, tag), proposal, True)
