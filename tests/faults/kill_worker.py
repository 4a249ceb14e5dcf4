"""Workloads the SIGKILL fault test kills at random instants (run as a script, not collected).

python kill_worker.py MODE REPO LOG START

Each loop prints READY once started, then after every operation that reported success
appends `i hash` to LOG (fsynced): the test checks afterwards that every logged commit is
still there, bit-exact. MODE is one of:

  commit   API add + commit of a few tensors, with a gc every third step
  import   `coral import FILE.safetensors -m ...` through the CLI entry point
  merge    a side branch committed, then `coral merge` into main through the CLI
  gc       commits on a side branch that is deleted, then `Repository.gc()` (API)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


def weights(i: int) -> dict[str, np.ndarray]:
    """What step `i` commits (deterministic, so the test can check the values)."""
    rng = np.random.default_rng(i)
    return {
        "enc.weight": rng.standard_normal((96, 64)).astype(np.float32),
        "enc.bias": np.full(64, i, dtype=np.float32),
        f"head.{i % 4}.weight": rng.standard_normal((64, 8)).astype(np.float16),
    }


def _log(log: Path, i: int, commit: str) -> None:
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"{i} {commit}\n")
        f.flush()
        os.fsync(f.fileno())


def _cli(repo: Path, *args: str, may_be_done: bool = False) -> None:
    """Run a coral command; with `may_be_done`, "nothing to commit" (a kill after this step
    committed, before it was logged) is fine."""
    from coral.cli.main import main

    code = main(["-C", str(repo), *args])
    if code != 0 and not may_be_done:
        raise SystemExit(f"coral {' '.join(args)} exited {code}")


def _start(repo_path: Path):  # type: ignore[no-untyped-def]
    from coral.version_control.repository import Repository

    repo = Repository(repo_path, shared_staging=True)
    if repo.head().branch != "main":
        repo.checkout("main", force=True)
    repo.unstage()  # a kill may have left this loop's staged tensors behind
    return repo


def main() -> None:
    mode, repo_path, log, start = (
        sys.argv[1],
        Path(sys.argv[2]),
        Path(sys.argv[3]),
        int(sys.argv[4]),
    )
    from coral.errors import NothingToCommitError

    repo = _start(repo_path)
    print("READY", flush=True)
    i = start
    while True:
        if mode == "commit":
            repo.add_all_weights(weights(i))
            try:
                commit = repo.commit(f"step {i}", allow_empty=False)
            except NothingToCommitError:  # a kill after committing i, before logging it
                commit = repo.resolve_ref("HEAD")
            _log(log, i, commit)
            if i % 3 == 2:
                repo.gc()
        elif mode == "import":
            from safetensors.numpy import save_file

            src = log.parent / f"import-{i}.safetensors"
            save_file(weights(i), str(src))
            _cli(repo_path, "import", str(src), "-m", f"import {i}", may_be_done=True)
            repo.close()
            repo = _start(repo_path)
            held = repo.get_all_weights("HEAD")
            assert all(held[n].data.tobytes() == a.tobytes() for n, a in weights(i).items())
            _log(log, i, repo.resolve_ref("HEAD"))
            src.unlink()
        elif mode == "merge":
            side = f"side{i}-{os.getpid()}"
            repo.create_branch(side)
            repo.checkout(side)
            repo.add_all_weights({f"side.{i}": weights(i)["enc.bias"]})
            repo.commit(f"side {i}", allow_empty=True)  # rerun: main may hold it already
            repo.checkout("main")
            repo.add_all_weights(weights(i))
            repo.commit(f"main {i}", allow_empty=True)  # a rerun of step i changes nothing
            repo.close()
            _cli(repo_path, "merge", side, "-m", f"merge {i}")
            repo = _start(repo_path)
            _log(log, i, repo.resolve_ref("HEAD"))
            repo.delete_branch(side, force=True)
        elif mode == "gc":
            side = f"tmp{i}-{os.getpid()}"
            repo.create_branch(side)
            repo.checkout(side)
            repo.add_all_weights({"garbage": np.full(4096, i, dtype=np.float64)})
            repo.commit("garbage", allow_empty=False)
            repo.checkout("main")
            repo.delete_branch(side, force=True)
            repo.expire_reflog()
            repo.add_all_weights(weights(i))
            _log(log, i, repo.commit(f"step {i}", allow_empty=True))  # rerun: may be done
            repo.gc()
        else:
            raise SystemExit(f"unknown mode {mode}")
        i += 1


if __name__ == "__main__":
    main()
