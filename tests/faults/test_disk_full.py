"""A full disk: read-only commands keep working, writes fail with an error naming the file and
the free space, no partial file stays behind, and gc clears what failed writes left at once.

The disk is a real one: a 24 MiB tmpfs, mounted here when running as root, else inside a user
namespace (`unshare -rm`); the test is skipped, saying why, when neither is possible. The
scenario runs in `disk_full_worker.py` (API calls, and the CLI in subprocesses). The WAL reader
behind the read-only fallback and gc's clean-up of temporaries are also checked without a mount.

Cases at CORAL_FAULT_SCALE=1: one full-disk run (6 API reads, 7 CLI reads, a repository whose
last commit is only in its WAL, 3 writes), 3 * scale WAL images, 2 gc clean-ups.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coral.version_control.db_readonly import committed_frames, open_read_only
from coral.version_control.repository import Repository
from tests.faults.disk_full_worker import build_wal_only, weights
from tests.faults.scale import trials

ROOT = Path(__file__).resolve().parents[2]
SIZE = "24m"
WORKER = "tests.faults.disk_full_worker"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run_on_full_disk(tmp_path: Path) -> dict[str, Any]:
    """Run the worker on a fresh tmpfs at tmp_path/disk; its results."""
    disk, outside, result = tmp_path / "disk", tmp_path / "outside", tmp_path / "result.json"
    disk.mkdir()
    outside.mkdir()
    worker = [sys.executable, "-m", WORKER, str(disk), str(outside), str(result)]
    mount = ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(disk)]
    as_root = os.geteuid() == 0 and shutil.which("mount") is not None
    if as_root and subprocess.run(mount, capture_output=True).returncode == 0:
        try:
            subprocess.run(worker, check=True, env=_env(), cwd=ROOT, timeout=600)
        finally:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
        return dict(json.loads(result.read_text()))
    if shutil.which("unshare"):
        script = " ".join(mount) + " && exec " + " ".join(worker)
        probe = subprocess.run(
            ["unshare", "-rm", "sh", "-c", script], env=_env(), cwd=ROOT, timeout=600
        )
        if probe.returncode == 0 and result.exists():
            return dict(json.loads(result.read_text()))
    pytest.skip("cannot mount a small tmpfs here: not root, and `unshare -rm` is unavailable")


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run_on_full_disk(tmp_path_factory.mktemp("full"))


def test_the_disk_is_really_full(full_disk: dict[str, Any]):
    assert full_disk["free"] == 0
    assert full_disk["wal_bytes"] > 0


def test_reads_work_from_the_api(full_disk: dict[str, Any]):
    api = full_disk["api"]
    assert api["ok"], api
    value = api["value"]
    assert value["log"] == ["second", "first"]
    assert value["status"] == "main" and value["branches"] == ["dev", "main"]
    assert value["weights"] == ["step", "w"] and value["diff"] == ["step", "w"]
    assert value["fsck"] is True


def test_reads_work_from_the_cli(full_disk: dict[str, Any]):
    for command, run in full_disk["cli"].items():
        assert run["rc"] == 0, (command, run["stderr"])
    cli = full_disk["cli"]
    assert full_disk["commits"]["second"][:10] in cli["log --oneline"]["stdout"]
    assert "ok:" in cli["fsck"]["stdout"]
    assert "exported" in next(v for k, v in cli.items() if k.startswith("export"))["stdout"]


def test_a_commit_only_in_the_wal_is_read(full_disk: dict[str, Any]):
    log = full_disk["wal_log"]
    assert log["rc"] == 0, log["stderr"]
    assert full_disk["wal_commit"][:10] in log["stdout"] and "only in the wal" in log["stdout"]


def test_writes_fail_naming_the_file_and_the_free_space(full_disk: dict[str, Any]):
    writes = full_disk["writes"]
    commit = writes["api commit"]
    assert not commit["ok"] and commit["coral"], commit
    assert "no space left on the device writing /" in commit["error"]
    assert "bytes free" in commit["error"]
    for name in ("cli tag", "cli export to the full disk"):
        run = writes[name]
        assert run["rc"] == 1, (name, run)
        assert "no space left on the device writing /" in run["stderr"], (name, run["stderr"])
        assert "bytes free" in run["stderr"]
        assert "bug in Coral" not in run["stderr"] and "Errno" not in run["stderr"]
    assert "m.safetensors" in writes["cli export to the full disk"]["stderr"]


def test_failed_writes_leave_no_partial_file(full_disk: dict[str, Any]):
    assert full_disk["temporaries"] == []


# -- without a mount ----------------------------------------------------------------------------
def test_the_wal_image_holds_the_commits_only_in_the_wal(tmp_path: Path):
    for trial in range(trials(3)):
        path = tmp_path / f"r{trial}"
        newest = build_wal_only(path)
        db = path / ".coral" / "coral.db"
        wal = Path(f"{db}-wal").read_bytes()
        assert committed_frames(wal) is not None
        conn = open_read_only(db, 1.0, "test")
        try:
            tips = dict(conn.execute("SELECT name, commit_id FROM branches").fetchall())
        finally:
            conn.close()
        assert tips == {"main": newest}
        assert Path(f"{db}-wal").read_bytes() == wal  # nothing written
        assert not Path(f"{db}-shm").exists()
        with Repository(path) as repo:  # the normal way agrees
            assert repo.refs.branch_tip("main") == newest


def test_a_wal_with_a_torn_frame_gives_the_last_commit_before_it(tmp_path: Path):
    path = tmp_path / "r"
    build_wal_only(path)
    db = path / ".coral" / "coral.db"
    wal = bytearray(Path(f"{db}-wal").read_bytes())
    frames = committed_frames(bytes(wal))
    assert frames is not None
    wal[-10] ^= 0xFF  # the last frame's checksum no longer holds: its transaction is not read
    torn = committed_frames(bytes(wal))
    assert torn is None or torn[1] != frames[1]


def test_gc_removes_temporaries_of_failed_writes_at_once(tmp_path: Path):
    with Repository.init(tmp_path / "repo") as repo:
        repo.add_all_weights(weights(0))
        repo.commit("first")
        tmp = repo.store.backend.unwrap().path("tmp")
        stale = [tmp / "0123abcd.partial.tmp", tmp / "feedbeef.deadbeef.tmp"]
        for p in stale:
            p.write_bytes(b"half a pack")  # just written: younger than any grace period
        repo.gc()
        assert not any(p.exists() for p in stale)
        assert repo.fsck().ok
