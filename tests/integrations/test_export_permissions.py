"""Exported files (weights, `config.json` and other model files, `coral_metadata.json`) get the
permissions of a normal file — 0644 minus the umask — not mkstemp's private 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.registry import ModelPublisher
from coral.version_control.repository import Repository


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    with Repository.init(path) as repo:
        repo.add_all_weights({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
        repo.add_files({"config.json": b'{"model_type": "bert"}\n', "sub/vocab.txt": b"a\nb\n"})
        repo.commit("with files")
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("fmt", ["hf", "safetensors", "pt", "npz"])
def test_cli_export_writes_0644_files(repo_dir: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / ("out" if fmt == "hf" else f"out.{fmt}")
    result = CliRunner().invoke(
        app, ["-C", str(repo_dir), "export", "HEAD", str(target), "--format", fmt]
    )
    assert result.exit_code == 0, result.output
    files = [p for p in target.rglob("*") if p.is_file()] if target.is_dir() else [target]
    assert files
    if fmt == "hf":
        assert {p.name for p in files} >= {"config.json", "vocab.txt"}
    for f in files:
        assert _mode(f) == 0o644, (f, oct(_mode(f)))


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("fmt", ["safetensors", "pt", "npz"])
def test_publish_local_writes_0644_files(repo_dir: Path, tmp_path: Path, fmt: str) -> None:
    with Repository(repo_dir) as repo:
        result = ModelPublisher(repo).publish_local(tmp_path / "pub", format=fmt)
    assert result.success, result.error
    for name in result.metadata["files"]:
        assert _mode(tmp_path / "pub" / name) == 0o644, name


def test_the_umask_is_respected(tmp_path: Path) -> None:
    from coral.storage.atomic_file import current_umask, write_atomic

    old = os.umask(0o077)
    try:
        assert current_umask() == 0o077
        write_atomic(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.json") == 0o600


@pytest.mark.usefixtures("umask_022")
def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    from coral.storage.atomic_file import atomic_write, write_atomic

    target = tmp_path / "f.bin"
    write_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary left behind
    assert _mode(target) == 0o644


def test_one_atomic_write_everywhere() -> None:
    """The formats' helper is the storage one (one implementation, in the lower layer)."""
    from coral.integrations.formats import _common
    from coral.storage.atomic_file import atomic_write

    assert _common.atomic_write is atomic_write
