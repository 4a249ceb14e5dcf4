"""Two processes editing one config file at once both land: each read-edit-write of
`config_file.set_key` / `unset_key` holds an exclusive lock (before, the later writer's copy
could drop the earlier one's key)."""

from __future__ import annotations

import multiprocessing
import tomllib
from pathlib import Path

from coral.version_control import config_file

ROUNDS = 40


def _writer(path: str, prefix: str) -> None:
    for i in range(ROUNDS):
        config_file.set_key(Path(path), f"{prefix}.k{i}", i)
        if i % 5 == 4:
            config_file.unset_key(Path(path), f"{prefix}.k{i - 1}")


def test_concurrent_writers_lose_no_key(tmp_path: Path) -> None:
    path = tmp_path / ".coral" / "config.toml"
    path.parent.mkdir()
    path.write_text("# kept: a comment\n[core]\nprofile = 'default'\n")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), p)) for p in ("alpha", "beta", "gamma")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    data = tomllib.loads(path.read_text())
    expected = {f"k{i}": i for i in range(ROUNDS) if i % 5 != 3}
    for prefix in ("alpha", "beta", "gamma"):
        assert data[prefix] == expected, prefix
    assert data["core"] == {"profile": "default"}
    assert path.read_text().startswith("# kept: a comment")
