"""`coral.porcelain.semver`: parsing, precedence and the next release version."""

from __future__ import annotations

import pytest

from coral.porcelain.semver import (
    Version,
    VersionError,
    bump,
    check_build,
    check_label,
    next_version,
    parse,
    try_parse,
)


@pytest.mark.parametrize(
    "text",
    [
        "v1.2.3",
        "v0.1.0",
        "v1.3.0-beta.1",
        "v1.0.0-alpha",
        "v1.0.0-x.7.z.92",
        "v2.0.0+build.5",
        "v1.0.0-rc.1+exp.sha.5114f85",
    ],
)
def test_round_trip(text: str) -> None:
    assert str(parse(text)) == text
    assert str(parse(text.lstrip("v"))) == text


@pytest.mark.parametrize(
    "text", ["1.2", "v1.2.3.4", "v01.2.3", "v1.2.3-", "v1.2.3-beta..1", "v1.2.3-01", "x1.0.0", ""]
)
def test_refuses_what_is_not_semver(text: str) -> None:
    with pytest.raises(VersionError):
        parse(text)
    assert try_parse(text) is None


def test_precedence_is_semvers() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    versions = [parse(v) for v in ordered]
    assert sorted(reversed(versions)) == versions
    assert parse("1.0.0+a") == parse("1.0.0+b")  # build metadata has no precedence


def test_bump() -> None:
    assert bump(None, "major") == Version(1, 0, 0)
    assert bump(None, "minor") == bump(None, "patch") == Version(0, 1, 0)
    base = parse("v1.2.3")
    assert [str(bump(base, lv)) for lv in ("major", "minor", "patch")] == [
        "v2.0.0",
        "v1.3.0",
        "v1.2.4",
    ]
    with pytest.raises(VersionError, match="unknown release level"):
        bump(base, "huge")


def test_next_version_counts_pre_releases_per_label() -> None:
    existing = [parse(v) for v in ("v1.2.0", "v1.3.0-beta.1", "v1.3.0-beta.2", "v1.1.0")]
    assert str(next_version(existing, "minor", pre="beta")) == "v1.3.0-beta.3"
    assert str(next_version(existing, "minor", pre="rc")) == "v1.3.0-rc.1"
    assert str(next_version(existing, "minor")) == "v1.3.0"
    assert str(next_version(existing, "major", pre="beta")) == "v2.0.0-beta.1"
    assert str(next_version(existing, "patch", build="ci.42")) == "v1.2.1+ci.42"
    assert str(next_version([*existing, parse("v1.3.0")], "minor", pre="beta")) == "v1.4.0-beta.1"


def test_labels_and_build_metadata_are_checked() -> None:
    assert check_label("beta") == "beta" and check_label("rc-2") == "rc-2"
    for bad in ("", "1", "be.ta", "be ta"):
        with pytest.raises(VersionError):
            check_label(bad)
    assert check_build("exp.sha.5114f85") == ("exp", "sha", "5114f85")
    for bad in ("", "a..b", "a+b"):
        with pytest.raises(VersionError):
            check_build(bad)
