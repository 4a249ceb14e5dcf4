"""Subprocess workloads for the crash and concurrency tests (run as scripts, not collected).

python workers.py crash REPO LOG START     commit/gc loop, logging "i hash" after each commit
python workers.py commit REPO WORKER N      N commits of its own tensor to main, retrying on
                                            ConcurrentUpdateError; prints a JSON summary
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def crash_weights(i: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(i)
    return {
        "enc.weight": rng.standard_normal((64, 32)).astype(np.float32),
        "enc.bias": np.full(32, i, dtype=np.float32),
        "step": np.array([i], dtype=np.int64),
    }


def worker_value(worker: int, i: int) -> np.ndarray:
    return np.full(8, worker * 1000 + i, dtype=np.float64)


def crash_loop(repo_path: str, log_path: str, start: int) -> None:
    from coral.errors import NothingToCommitError
    from coral.version_control.repository import Repository

    repo = Repository(repo_path)
    if repo.refs.branch_tip("main") is not None:
        # a kill may have left HEAD on a side branch with garbage staged: start over on main
        repo.checkout("main", force=True)
    with open(log_path, "a", encoding="utf-8") as log:
        i = start
        while True:
            repo.add_all_weights(crash_weights(i))
            try:
                h = repo.commit(f"c{i}", metadata={"i": i}, allow_empty=False)
            except NothingToCommitError:  # killed after committing i, before logging it
                h = repo.resolve_ref("HEAD")
                assert repo.get_commit(h).metadata["i"] == i
            log.write(f"{i} {h}\n")
            log.flush()
            os.fsync(log.fileno())
            if i % 3 == 0:  # make garbage: a side branch, deleted, its reflog expired
                repo.create_branch(f"tmp{i}")
                repo.checkout(f"tmp{i}")
                repo.add_all_weights({"garbage": np.full(512, i, dtype=np.float64)})
                repo.commit("garbage", allow_empty=False)
                repo.checkout("main")
                repo.delete_branch(f"tmp{i}", force=True)
                repo.expire_reflog()
                repo.gc()
            if i % 5 == 0:
                repo.tag_version(f"t{i}", f"tag {i}", {"i": i})
            i += 1


def commit_loop(repo_path: str, worker: int, n: int) -> None:
    from coral.errors import ConcurrentUpdateError, NothingToCommitError
    from coral.version_control.repository import Repository

    repo = Repository(repo_path)
    done: list[str] = []
    collisions = 0
    absorbed = 0
    for i in range(n):
        repo.add_all_weights({f"p{worker}.w": worker_value(worker, i)})
        while True:
            try:
                done.append(repo.commit(f"worker {worker} step {i}", allow_empty=False))
                break
            except ConcurrentUpdateError as exc:
                assert exc.hint and "again" in exc.hint
                collisions += 1
            except NothingToCommitError:
                absorbed += 1  # another worker's commit took our staged tensor (never, now)
                break
    print(json.dumps({"commits": done, "collisions": collisions, "absorbed": absorbed}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "crash":
        crash_loop(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "commit":
        commit_loop(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")
