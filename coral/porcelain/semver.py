"""Semantic versions (semver.org 2.0.0) as release tags spell them: `v1.2.0`, `v1.3.0-beta.1`,
`v2.0.0+build.7`. Parsing, precedence and the next version of a release.

`packaging.version` speaks PEP 440 (`1.3.0b1`), not semver's pre-release spelling, hence this
small module.

>>> next_version([parse("v1.2.0")], "minor", pre="beta")
Version(major=1, minor=3, patch=0, pre=('beta', 1), build=())
>>> str(_)
'v1.3.0-beta.1'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

from coral.errors import CoralError

LEVELS = ("major", "minor", "patch")
_NUM = r"0|[1-9]\d*"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"^v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?$"
)
_LABEL = re.compile(r"^[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*$")  # one non-numeric identifier
_BUILD = re.compile(rf"^{_IDENT}(?:\.{_IDENT})*$")


class VersionError(CoralError):
    default_hint = "write versions as semver: v1.2.0, v1.3.0-beta.1, v1.3.0+build.5"


@total_ordering
@dataclass(frozen=True)
class Version:
    """One semantic version; ordered by semver precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    pre: tuple[str | int, ...] = ()
    build: tuple[str, ...] = ()

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.pre)

    @property
    def pre_label(self) -> str | None:
        """The label of a `LABEL.N` pre-release (`beta` of `beta.2`)."""
        return ".".join(str(p) for p in self.pre[:-1]) if len(self.pre) > 1 else None

    def __str__(self) -> str:
        text = "v{}.{}.{}".format(*self.core)
        if self.pre:
            text += "-" + ".".join(str(p) for p in self.pre)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def _key(self) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int, str], ...]]:
        # a pre-release sorts before its release; numeric identifiers before alphanumeric ones
        parts = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return (self.core, 0 if self.pre else 1, parts)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def parse(text: str) -> Version:
    """`v1.2.3`, `1.2.3-rc.1+abc` -> Version; VersionError when it is not semver."""
    m = _SEMVER.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise VersionError(f"not a semantic version: {text!r}")
    pre: list[str | int] = []
    for part in m.group("pre").split(".") if m.group("pre") else []:
        if part.isdigit() and len(part) > 1 and part.startswith("0"):
            raise VersionError(f"not a semantic version: {text!r} (a number with a leading 0)")
        pre.append(int(part) if part.isdigit() else part)
    build = tuple(m.group("build").split(".")) if m.group("build") else ()
    return Version(
        int(m.group("major")), int(m.group("minor")), int(m.group("patch")), tuple(pre), build
    )


def try_parse(text: str) -> Version | None:
    """The version `text` spells, None when it is not one."""
    try:
        return parse(text)
    except VersionError:
        return None


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise VersionError(
            f"unknown release level {level!r}", hint="use major, minor or patch (or a v1.2.3)"
        )
    return level


def check_label(label: str) -> str:
    """A pre-release label: one identifier of letters, digits and '-', not all digits."""
    if not _LABEL.match(label):
        raise VersionError(
            f"bad pre-release label {label!r}",
            hint="use one word of letters, digits and '-', e.g. --pre beta or --pre rc",
        )
    return label


def check_build(build: str) -> tuple[str, ...]:
    if not _BUILD.match(build):
        raise VersionError(
            f"bad build metadata {build!r}",
            hint="use dot-separated letters, digits and '-', e.g. --build 20240101.sha.abc123",
        )
    return tuple(build.split("."))


def bump(base: Version | None, level: str) -> Version:
    """The release after the final release `base` at `level` (pre-release and build dropped);
    the first release is v1.0.0 for major, else v0.1.0."""
    check_level(level)
    if base is None:
        return Version(1, 0, 0) if level == "major" else Version(0, 1, 0)
    if level == "major":
        return Version(base.major + 1, 0, 0)
    if level == "minor":
        return Version(base.major, base.minor + 1, 0)
    return Version(base.major, base.minor, base.patch + 1)


def latest_final(versions: Iterable[Version]) -> Version | None:
    """The highest version that is not a pre-release."""
    finals = [v for v in versions if not v.is_prerelease]
    return max(finals) if finals else None


def next_version(
    existing: Iterable[Version],
    level: str,
    *,
    pre: str | None = None,
    build: str | None = None,
) -> Version:
    """The next release at `level` after the highest final release of `existing`; with `pre`,
    the next `LABEL.N` pre-release of it (N counts up per label: beta.1, beta.2, rc.1)."""
    versions = list(existing)
    core = bump(latest_final(versions), level)
    meta = check_build(build) if build else ()
    if pre is None:
        return Version(*core.core, build=meta)
    check_label(pre)
    taken = [
        v.pre[-1]
        for v in versions
        if v.core == core.core and v.pre_label == pre and isinstance(v.pre[-1], int)
    ]
    n = max((int(t) for t in taken), default=0) + 1
    return Version(*core.core, pre=(pre, n), build=meta)
