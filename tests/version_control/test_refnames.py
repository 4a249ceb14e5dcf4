"""Ref name validation and ref-expression parsing."""

from __future__ import annotations

import pytest

from coral.errors import InvalidNameError, RefNotFoundError
from coral.version_control.refnames import RefStep, check_name, is_valid_name, parse_ref


@pytest.mark.parametrize(
    "name",
    ["main", "feature/x", "exp/lr-3e-4/run_2", "v1.0", "release-2024.01", "a", "UPPER", "deadbeef"],
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a..b",
        "/lead",
        "-dash",
        "trail/",
        "x.lock",
        "has space",
        "tab\tname",
        "nul\0",
        "bell\x07",
        "del\x7f",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[0]",
        "back\\slash",
        "HEAD",
        "@",
        "a//b",
        ".hidden",
        "dir/.hidden",
        "ends.",
        "a@{1}",
        "../../etc/passwd",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        check_name(name, "tag")
    assert "tag" in str(info.value)
    assert info.value.hint
    assert not is_valid_name(name)


def test_parse_plain_and_suffixes() -> None:
    assert parse_ref("main").base == "main"
    assert parse_ref("main").steps == ()
    assert parse_ref("HEAD~3").steps == (RefStep("~", 3),)
    assert parse_ref("HEAD~").steps == (RefStep("~", 1),)
    assert parse_ref("v1^").steps == (RefStep("^", 1),)
    assert parse_ref("v1^^").steps == (RefStep("^", 1), RefStep("^", 1))
    assert parse_ref("main^2~1").steps == (RefStep("^", 2), RefStep("~", 1))
    assert parse_ref("feat/x~2").base == "feat/x"
    assert parse_ref("@~1").base == "HEAD"


@pytest.mark.parametrize("bad", ["", "   ", "~1", "^", "main~x", "main^-1"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(RefNotFoundError):
        parse_ref(bad)
