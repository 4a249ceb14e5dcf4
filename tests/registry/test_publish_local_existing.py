"""`publish local` into a folder that already holds an export refuses (with a hint naming
`--force`) instead of overwriting it silently; `--force` / force=True replaces it."""

from __future__ import annotations

from pathlib import Path

from coral.cli.main import main
from coral.integrations.formats import load_weights
from coral.registry import ModelPublisher
from coral.version_control.repository import Repository
from tests.registry.conftest import assert_bit_exact, special_weights


def coral(repo: Repository, *args: str) -> int:
    return main(["-C", str(repo.path), *args])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_existing_export_is_not_overwritten(repo: Repository, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert ModelPublisher(repo).publish_local(out).success
    before = _snapshot(out)
    result = ModelPublisher(repo).publish_local(out, commit_ref="HEAD~2")
    assert not result.success
    assert "already holds an export" in (result.error or "")
    assert "force" in (result.error or "")
    assert _snapshot(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]  # no staging left


def test_force_replaces_an_earlier_export(repo: Repository, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert ModelPublisher(repo).publish_local(out, format="npz").success
    result = ModelPublisher(repo).publish_local(out, commit_ref="HEAD~2", force=True)
    assert result.success, result.error
    assert sorted(p.name for p in out.iterdir()) == ["coral_metadata.json", "model.safetensors"]
    assert_bit_exact(load_weights(out / "model.safetensors"), special_weights(0))


def test_an_empty_existing_folder_is_fine(repo: Repository, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert ModelPublisher(repo).publish_local(out).success


def test_force_never_deletes_other_files(repo: Repository, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = ModelPublisher(repo).publish_local(out, force=True)
    assert not result.success and "notes.txt" in (result.error or "")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_cli_refuses_then_force_replaces(repo: Repository, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "cli")
    assert coral(repo, "publish", "local", out) == 0
    capsys.readouterr()
    assert coral(repo, "publish", "local", out, "--ref", "HEAD~2") == 1
    err = capsys.readouterr().err
    assert "already holds an export" in err and "--force" in err
    assert coral(repo, "publish", "local", out, "--ref", "HEAD~2", "--force") == 0
    assert_bit_exact(load_weights(tmp_path / "cli" / "model.safetensors"), special_weights(0))
