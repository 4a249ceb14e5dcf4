"""Run on a small file system that this script fills to 100%: what works and what fails.

`python -m tests.faults.disk_full_worker DISK OUTSIDE RESULT` builds two repositories on DISK
(one whose newest commit is only in the `-wal` file, as a killed process leaves it), fills DISK,
then runs read-only commands (API, and the CLI in subprocesses), exports to OUTSIDE (another
file system) and tries writes. Each outcome goes to RESULT as JSON for `test_disk_full.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from coral.errors import CoralError
from coral.version_control.repository import Repository

CLI = "import sys; from coral.cli.main import main; sys.argv[0] = 'coral'; sys.exit(main())"


def weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((64, 16)).astype(np.float32), "step": np.array([seed])}


def build(path: Path) -> dict[str, str]:
    with Repository.init(path) as repo:
        repo.add_all_weights(weights(0))
        first = repo.commit("first")
        repo.create_branch("dev")
        repo.add_all_weights(weights(1))
        second = repo.commit("second")
        repo.tag_version("v1")
    return {"first": first, "second": second}


def build_wal_only(path: Path) -> str:
    """A repository whose last commit a killed process left in the `-wal` file (its `-shm`
    lost too): only reading the WAL shows it."""
    with Repository.init(path) as repo:
        repo.add_all_weights(weights(5))
        repo.commit("checkpointed")
    code = (
        "import os, sys; from tests.faults.disk_full_worker import weights;"
        "from coral.version_control.repository import Repository;"
        "r = Repository(sys.argv[1]); r.add_all_weights(weights(6));"
        "print(r.commit('only in the wal'), flush=True); os._exit(0)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    db = path / ".coral" / "coral.db"
    Path(f"{db}-shm").unlink()
    return out.stdout.strip()


def fill(disk: Path) -> None:
    """Write until the file system refuses another byte."""
    with open(disk / "fill", "wb", buffering=0) as fh:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                continue


def attempt(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"ok": True, "value": call()}
    except CoralError as exc:
        return {"ok": False, "coral": True, "error": exc.message, "type": type(exc).__name__}
    except Exception as exc:  # recorded: the test fails on anything but a CoralError
        return {"ok": False, "coral": False, "error": repr(exc), "type": type(exc).__name__}


def cli(repo: Path, *args: str) -> dict[str, Any]:
    env = dict(os.environ, COLUMNS="100")
    p = subprocess.run(
        [sys.executable, "-c", CLI, "-C", str(repo), *args], capture_output=True, text=True, env=env
    )
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def api_reads(path: Path) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        with Repository(path) as repo:
            return {
                "log": [c.message for c in repo.log()],
                "status": repo.status().branch,
                "weights": sorted(repo.get_all_weights("HEAD")),
                "diff": sorted(repo.diff("HEAD~1", "HEAD").changed),
                "branches": sorted(b.name for b in repo.refs.list_branches()),
                "fsck": repo.fsck().ok,
            }

    return attempt(run)


def api_commit(path: Path) -> dict[str, Any]:
    def run() -> str:
        with Repository(path) as repo:
            repo.add_all_weights(weights(2))
            return repo.commit("third")

    return attempt(run)


def temporaries(disk: Path) -> list[str]:
    return sorted(str(p) for p in disk.rglob("*.tmp"))


def main(disk: Path, outside: Path, result: Path) -> None:
    repo, wal_repo = disk / "repo", disk / "walrepo"
    out: dict[str, Any] = {"commits": build(repo), "wal_commit": build_wal_only(wal_repo)}
    out["wal_bytes"] = (wal_repo / ".coral" / "coral.db-wal").stat().st_size
    fill(disk)
    out["free"] = os.statvfs(disk).f_bavail
    out["api"] = api_reads(repo)
    out["cli"] = {
        " ".join(args): cli(repo, *args)
        for args in (
            ("log", "--oneline"),
            ("show", "HEAD"),
            ("status",),
            ("diff", "HEAD~1", "HEAD"),
            ("fsck",),
            ("branch",),
            ("export", "HEAD", str(outside / "model.safetensors")),
        )
    }
    out["wal_log"] = cli(wal_repo, "log", "--oneline")
    out["writes"] = {
        "api commit": api_commit(repo),
        "cli tag": cli(repo, "tag", "v2"),
        "cli export to the full disk": cli(repo, "export", "HEAD", str(disk / "m.safetensors")),
    }
    out["temporaries"] = temporaries(disk)
    result.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
