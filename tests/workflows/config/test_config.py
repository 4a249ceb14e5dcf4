"""`coral config get|set|unset|list`: typed, checked settings in .coral/config.toml."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from coral.errors import CoralError
from coral.porcelain.config import get_value, list_values, set_value, unset_value
from coral.version_control import config_file
from coral.version_control.repository import Repository
from tests.workflows.config.conftest import Proc, Run, assert_user_error


def _config(repo: Path) -> str:
    return (repo / ".coral" / "config.toml").read_text(encoding="utf-8")


def test_set_get_unset_keep_comments_and_other_keys(coral: Run, repo: Path) -> None:
    path = repo / ".coral" / "config.toml"
    path.write_text(_config(repo) + '# my note\n[team]\nowner = "ml"  # who\n', encoding="utf-8")

    result = coral("config", "set", "storage.mode", "max")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == 'storage.mode = "max"'
    assert coral("config", "get", "storage.mode").stdout == "max\n"
    changed = coral("config", "set", "storage.mode", "fast", "--json")
    assert json.loads(changed.stdout) == {
        "key": "storage.mode",
        "value": "fast",
        "previous": "max",
        "path": str(path),
    }
    text = _config(repo)
    assert "# Coral repository settings" in text and "# my note" in text
    assert 'owner = "ml"  # who' in text
    assert tomllib.loads(text)["storage"] == {"mode": "fast"}

    result = coral("config", "unset", "storage.mode")
    assert result.exit_code == 0 and 'was "fast"' in result.stdout
    assert (
        "storage" not in tomllib.loads(_config(repo)) or not tomllib.loads(_config(repo))["storage"]
    )
    assert coral("config", "get", "storage.mode").stdout == "default\n"  # the default again
    assert tomllib.loads(_config(repo))["team"] == {"owner": "ml"}


def test_values_are_typed_and_the_setting_takes_effect(coral: Run, repo: Path) -> None:
    for key, text in (
        ("storage.chunk_bytes", "1MiB"),
        ("storage.reverse_deltas", "off"),
        ("storage.max_chain_depth", "12"),
        ("similarity.threshold", "0.97"),
        ("watch.patterns", "*.pt, *.safetensors"),
        ("user.name", "Ada Lovelace"),
    ):
        assert coral("config", "set", key, text).exit_code == 0, key
    written = tomllib.loads(_config(repo))
    assert written["storage"] == {
        "chunk_bytes": 1 << 20,
        "reverse_deltas": False,
        "max_chain_depth": 12,
    }
    assert written["similarity"] == {"threshold": 0.97}
    assert written["watch"] == {"patterns": ["*.pt", "*.safetensors"]}
    with Repository(repo) as r:
        assert r.store.config.chunk_bytes == 1 << 20
        assert r.store.config.reverse_deltas is False
        assert r.store.config.max_chain_depth == 12
        assert r.writer.fingerprint_index().similarity_threshold == 0.97
        assert r.default_author().startswith("Ada Lovelace")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("set", "storage.mod", "max"), ("unknown setting 'storage.mod'", "storage.mode")),
        (("set", "mode", "max"), ("unknown setting 'mode'", "did you mean storage.mode")),
        (("get", "storag.fsync"), ("unknown setting", "storage.fsync")),
        (("set", "storage.mode", "maxx"), ("unknown store mode 'maxx'",)),
        (("set", "storage.chunk_bytes", "lots"), ("storage.chunk_bytes", "8MiB")),
        (("set", "storage.chunk_bytes", "1"), ("chunk_bytes must be between",)),
        (("set", "storage.fsync", "maybe"), ("true or false",)),
        (("set", "similarity.threshold", "2"), ("between -1 and 1",)),
        (("set", "core.format_version", "9"), ("cannot be set",)),
        (("set", "core.profile", "archiv"), ("no settings profile named 'archiv'", "archive")),
        (("set", "alias.x", "log"), ("is an alias", "coral alias")),
        (("unset", "storage.mode"), ("is not set",)),
        (("get", "user.email"), ("user.email is not set", "coral config set user.email")),
    ],
)
def test_mistakes_are_one_error_and_a_hint(
    coral: Run, repo: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    before = _config(repo)
    assert_user_error(coral("config", *args), *fragments)
    assert _config(repo) == before  # nothing written


def test_list_shows_sources(coral: Run, repo: Path) -> None:
    coral("config", "set", "storage.workers", "2")
    coral("config", "profile", "use", "archive")
    result = coral("config", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "storage.workers = 2" in lines
    assert 'core.profile = "archive"' in lines
    assert 'storage.mode = "max"  # profile archive' in lines
    assert not any("# default" in line for line in lines)
    assert all(len(line) <= 80 for line in lines)

    everything = json.loads(coral("config", "list", "--all", "--json").stdout)
    by_key = {e["key"]: e for e in everything}
    assert set(everything[0]) == {"key", "value", "source", "profile", "known"}
    assert by_key["storage.workers"]["source"] == "config"
    assert by_key["storage.mode"] == {
        "key": "storage.mode",
        "value": "max",
        "source": "profile",
        "profile": "archive",
        "known": True,
    }
    assert by_key["storage.fsync"]["source"] == "default"

    env = json.loads(coral("config", "list", "--json", env={"CORAL_PROFILE": "fast"}).stdout)
    env_keys = {e["key"]: e for e in env}
    assert env_keys["core.profile"]["source"] == "env"
    assert env_keys["storage.mode"]["value"] == "fast"


def test_unknown_keys_in_the_file_are_listed_and_can_be_unset(coral: Run, repo: Path) -> None:
    path = repo / ".coral" / "config.toml"
    path.write_text(_config(repo) + '[team]\nowner = "ml"\n', encoding="utf-8")
    rows = {e["key"]: e for e in json.loads(coral("config", "list", "--json").stdout)}
    assert rows["team.owner"]["known"] is False
    assert "# config, unknown to Coral" in coral("config", "list").stdout
    assert coral("config", "unset", "team.owner").exit_code == 0
    assert "owner" not in _config(repo)


def test_porcelain_api(repo: Path) -> None:
    change = set_value(repo, "storage.cache_bytes", "64MiB")
    assert (change.key, change.value, change.previous) == ("storage.cache_bytes", 64 << 20, None)
    assert set_value(repo, "storage.workers", 3).value == 3  # typed values are checked too
    with pytest.raises(CoralError, match=r"storage\.workers"):
        set_value(repo, "storage.workers", "three")
    entry = get_value(repo, "storage.cache_bytes")
    assert (entry.value, entry.source) == (64 << 20, "config")
    with Repository(repo) as r:  # a Repository works as the target too
        assert get_value(r, "storage.mode").source == "default"
    assert [e.key for e in list_values(repo)] == [
        "core.format_version",
        "core.default_branch",
        "storage.workers",
        "storage.cache_bytes",
    ]
    assert unset_value(repo, "storage.workers").previous == 3


def test_a_layout_a_line_edit_cannot_handle_is_rewritten_whole(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[watch]\npatterns = [\n  "*.pt",\n  "*.bin",\n]\n[storage]\nmode = "max"\n')
    config_file.set_key(path, "watch.patterns", ["*.npz"])
    assert tomllib.loads(path.read_text()) == {
        "watch": {"patterns": ["*.npz"]},
        "storage": {"mode": "max"},
    }
    inline = tmp_path / "inline.toml"
    inline.write_text('storage = { mode = "fast" }\n# kept?\n')
    config_file.set_key(inline, "storage.workers", 2)
    assert tomllib.loads(inline.read_text()) == {"storage": {"mode": "fast", "workers": 2}}
    new = tmp_path / "new.toml"
    config_file.set_key(new, "user.name", 'A "quoted" name')
    assert tomllib.loads(new.read_text()) == {"user": {"name": 'A "quoted" name'}}
    assert config_file.unset_key(new, "user.email") is False


def test_config_through_the_real_program(coral_proc: Proc, repo: Path) -> None:
    done = coral_proc("config", "set", "storage.mode", "fast", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["value"] == "fast"
    got = coral_proc("config", "get", "storage.mode")
    assert got.stdout == "fast\n"
    bad = coral_proc("config", "set", "storage.mdoe", "fast")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: unknown setting 'storage.mdoe'")
    assert "hint: did you mean storage.mode?" in bad.stderr
    assert "Traceback" not in bad.stderr
