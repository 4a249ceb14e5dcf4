"""Settings profiles: built-in and own ones, `use`, CORAL_PROFILE, sharing as TOML files, and
the merge order defaults < profile < config.toml for every opening of a repository."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from coral.porcelain import profiles
from coral.version_control.repository import Repository
from tests.workflows.config.conftest import Proc, Run, assert_user_error, weights


def test_list_show_and_use(coral: Run, repo: Path) -> None:
    listed = json.loads(coral("config", "profile", "list", "--json").stdout)
    assert [p["name"] for p in listed] == ["default", "fast", "archive"]
    assert [p["active"] for p in listed] == [True, False, False]
    assert set(listed[0]) == {"name", "description", "builtin", "active", "settings", "path"}

    used = coral("config", "profile", "use", "archive")
    assert used.exit_code == 0 and "using profile archive" in used.stdout
    config = tomllib.loads((repo / ".coral" / "config.toml").read_text())
    assert config["core"]["profile"] == "archive"
    text = coral("config", "profile", "list").stdout
    assert any(line.startswith("*") and "archive" in line for line in text.splitlines())
    assert all(len(line) <= 80 for line in text.splitlines())

    shown = json.loads(coral("config", "profile", "show", "--json").stdout)
    assert shown["name"] == "archive" and shown["active"] is True
    assert shown["settings"] == {
        "storage.mode": "max",
        "storage.max_chain_depth": 64,
        "similarity.threshold": 0.95,
    }
    plain = coral("config", "profile", "show", "default").stdout
    assert "built-in defaults apply" in plain
    with Repository(repo) as r:
        assert r.store.config.mode == "max" and r.store.config.max_chain_depth == 64
        assert r.writer.fingerprint_index().similarity_threshold == 0.95
        assert r.config["core"]["profile"] == "archive"


def test_explicit_keys_win_over_the_profile(coral: Run, repo: Path) -> None:
    coral("config", "profile", "use", "archive")
    coral("config", "set", "storage.max_chain_depth", "16")
    with Repository(repo) as r:
        assert (r.store.config.mode, r.store.config.max_chain_depth) == ("max", 16)
    got = json.loads(coral("config", "get", "storage.mode", "--json").stdout)
    assert (got["source"], got["profile"]) == ("profile", "archive")
    # CORAL_PROFILE beats core.profile, and config.toml's own keys beat both
    with_env = coral("config", "get", "storage.mode", env={"CORAL_PROFILE": "fast"})
    assert with_env.stdout == "fast\n"
    depth = coral("config", "get", "storage.max_chain_depth", env={"CORAL_PROFILE": "fast"})
    assert depth.stdout == "16\n"


def _save_steps(coral: Run, folder: Path, steps: int, env: dict[str, str]) -> list[str]:
    """Save `steps` small updates of one tensor; the tensor ids, oldest first."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    commits = []
    for i in range(steps):
        w = w + rng.standard_normal(w.shape).astype(np.float32) * np.float32(1e-4)
        path = folder / f"step{i}.safetensors"
        save_file({"w": w}, str(path))
        result = coral("save", str(path), "-m", f"step {i}", "--json", env=env)
        assert result.exit_code == 0, result.output
        commits.append(json.loads(result.stdout)["commit_hash"])
    return commits


@pytest.mark.parametrize(("profile", "deepest"), [("archive", 11), ("default", 8)])
def test_a_commit_under_coral_profile_uses_that_profiles_settings(
    coral: Run, repo: Path, tmp_path: Path, profile: str, deepest: int
) -> None:
    """archive keeps delta chains up to 64 deep: the oldest of 12 versions is 11 XOR steps
    from the newest; under the default profile chains stop at 8."""
    commits = _save_steps(coral, tmp_path, 12, {"CORAL_PROFILE": profile})
    with Repository(repo) as r:
        ids = [r.get_tree(c).entries["w"].tensor_id for c in commits]
        depths = [r.store.stats(t).chain_depth for t in ids]
        assert max(depths) == deepest, depths
        assert r.store.config.mode == "default"  # CORAL_PROFILE was only for those commands
    assert "profile" not in tomllib.loads((repo / ".coral" / "config.toml").read_text())["core"]


def test_create_export_import_delete(coral: Run, repo: Path, tmp_path: Path) -> None:
    made = coral(
        "config",
        "profile",
        "create",
        "small",
        "--from",
        "archive",
        "--set",
        "storage.chunk_bytes=1MiB",
        "--set",
        "similarity.threshold=0.9",
        "--json",
    )
    assert made.exit_code == 0, made.output
    info = json.loads(made.stdout)
    assert info["settings"] == {
        "storage.mode": "max",
        "storage.max_chain_depth": 64,
        "storage.chunk_bytes": 1 << 20,
        "similarity.threshold": 0.9,
    }
    assert Path(info["path"]) == repo / ".coral" / "profiles" / "small.toml"
    assert profiles.profile_settings(repo, "small") == info["settings"]

    shared = tmp_path / "small.toml"
    assert coral("config", "profile", "export", "small", "-o", str(shared)).exit_code == 0
    printed = coral("config", "profile", "export", "small").stdout
    assert printed == shared.read_text()
    assert tomllib.loads(printed)["storage"]["chunk_bytes"] == 1 << 20

    other = tmp_path / "other"
    Repository.init(other).close()
    imported = coral("config", "profile", "import", str(shared), "--json", where=other)
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["settings"] == info["settings"]
    coral("config", "profile", "use", "small", where=other)
    with Repository(other) as r:
        assert r.store.config.chunk_bytes == 1 << 20 and r.store.config.mode == "max"

    assert_user_error(
        coral("config", "profile", "import", str(shared), where=other), "exists", "--name"
    )
    renamed = coral("config", "profile", "import", str(shared), "--name", "small2", where=other)
    assert renamed.exit_code == 0
    assert_user_error(
        coral("config", "profile", "delete", "small", where=other), "repository's profile"
    )
    assert coral("config", "profile", "delete", "small2", where=other).exit_code == 0
    assert not (other / ".coral" / "profiles" / "small2.toml").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("use", "archve"), ("no settings profile named 'archve'", "did you mean archive")),
        (("show", "nope"), ("no settings profile named 'nope'",)),
        (("create", "fast"), ("built-in profile",)),
        (("create", "x", "--set", "user.name=me"), ("cannot be part of a profile",)),
        (("create", "x", "--set", "storage.mod=max"), ("unknown setting", "storage.mode")),
        (("create", "x", "--set", "storage.mode"), ("bad setting", "KEY=VALUE")),
        (("create", "x", "--set", "storage.mode=turbo"), ("unknown store mode",)),
        (("create", "x", "--from", "nope"), ("no settings profile named 'nope'",)),
        (("create", "a/b"), ("bad profile name",)),
        (("delete", "default"), ("built-in profile",)),
        (("delete", "nope"), ("no settings profile",)),
        (("export", "nope"), ("no settings profile",)),
    ],
)
def test_profile_mistakes(
    coral: Run, repo: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    assert_user_error(coral("config", "profile", *args), *fragments)
    assert not (repo / ".coral" / "profiles" / "x.toml").exists()


def test_create_twice_needs_force(coral: Run, repo: Path) -> None:
    assert coral("config", "profile", "create", "mine", "--set", "storage.mode=fast").exit_code == 0
    assert_user_error(coral("config", "profile", "create", "mine"), "exists", "--force")
    again = coral("config", "profile", "create", "mine", "--force", "--set", "storage.workers=2")
    assert again.exit_code == 0
    assert profiles.profile_settings(repo, "mine") == {"storage.workers": 2}


def test_a_bad_profile_file_or_name_stops_commands_with_a_hint(
    coral: Run, repo: Path, tmp_path: Path, models: dict[str, Path]
) -> None:
    assert_user_error(
        coral("log", env={"CORAL_PROFILE": "archiv"}), "CORAL_PROFILE=archiv", "archive"
    )
    broken = repo / ".coral" / "profiles" / "broken.toml"
    broken.parent.mkdir()
    broken.write_text("[storage]\nmode = 'turbo'\n")
    assert_user_error(coral("status", env={"CORAL_PROFILE": "broken"}), "broken.toml", "turbo")
    bad = tmp_path / "bad.toml"
    bad.write_text("[remote]\nurl = 'x'\n")
    assert_user_error(coral("config", "profile", "import", str(bad)), "remote", "[storage]")

    # core.profile naming a profile that was removed by hand: `config` still works to fix it
    (repo / ".coral" / "profiles" / "gone.toml").write_text("[storage]\nmode = 'fast'\n")
    coral("config", "profile", "use", "gone")
    (repo / ".coral" / "profiles" / "gone.toml").unlink()
    assert_user_error(coral("save", str(models["base"]), "-m", "x"), "gone", "profile use")
    assert coral("config", "profile", "use", "default").exit_code == 0
    assert coral("save", str(models["base"]), "-m", "x").exit_code == 0


def test_profiles_api(repo: Path, tmp_path: Path) -> None:
    assert profiles.profile_settings(repo, "default") == {}
    assert profiles.profile_settings(str(repo), "fast") == {"storage.mode": "fast"}
    info = profiles.create_profile(
        repo, "tiny", settings={"storage.chunk_bytes": 65536}, description="small chunks"
    )
    assert (info.description, info.builtin, info.active) == ("small chunks", False, False)
    with Repository(repo) as r:
        assert profiles.profile_settings(r, "tiny") == {"storage.chunk_bytes": 65536}
        assert profiles.use_profile(r, "tiny").active
    text = profiles.export_profile(repo, "tiny", tmp_path / "t.toml")
    assert "small chunks" in text
    assert [p.name for p in profiles.list_profiles(repo) if p.active] == ["tiny"]
    assert profiles.show_profile(repo).name == "tiny"
    profiles.use_profile(repo, "default")
    assert profiles.delete_profile(repo, "tiny").name == "tiny"
    again = profiles.import_profile(repo, tmp_path / "t.toml", name="tiny2")
    assert again.settings == {"storage.chunk_bytes": 65536}


def test_profile_through_the_real_program(
    coral_proc: Proc, repo: Path, models: dict[str, Path]
) -> None:
    saved = coral_proc("save", str(models["base"]), "-m", "base", env={"CORAL_PROFILE": "fast"})
    assert saved.returncode == 0, saved.stderr
    listed = coral_proc("config", "profile", "list", "--json", env={"CORAL_PROFILE": "fast"})
    assert [p["name"] for p in json.loads(listed.stdout) if p["active"]] == ["fast"]
    used = coral_proc("config", "profile", "use", "archive", env={"CORAL_PROFILE": "fast"})
    assert used.returncode == 0 and "CORAL_PROFILE=fast overrides it" in used.stderr
    bad = coral_proc("log", env={"CORAL_PROFILE": "nope"})
    assert bad.returncode == 1 and bad.stderr.startswith("error: no settings profile")
    assert "hint:" in bad.stderr and "Traceback" not in bad.stderr
    with Repository(repo) as r:
        assert r.get_all_weights("HEAD")["head.weight"].data.tobytes() == (
            weights()["head.weight"].tobytes()
        )
