"""Subprocess workloads of the concurrency fault tests (run as a script, not collected).

python concurrency_worker.py commit REPO WORKER ROUNDS
    ROUNDS commits through the API, each staging: its own tensor, a tensor name every worker
    shares, a per-worker constant under another shared name (often equal to HEAD's when staged),
    a model file every worker shares, sometimes its own extra tensor or that tensor's removal;
    plus a decoy object that stages and is closed without committing. Prints one JSON line:
    [{"hash", "round", "tensors": {name: digest}, "removed": [...], "files": {path: digest}}].
python concurrency_worker.py stage REPO
    stages one tensor in a private session, prints its tensor id, then on each stdin line:
    "commit" commits it (prints the hash), "exit" leaves without closing anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any

import numpy as np


def digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def value(worker: int, i: int, salt: int = 0) -> np.ndarray:
    return np.full(16, worker * 100_000 + i * 10 + salt, dtype=np.float64)


def commit_rounds(repo_path: str, worker: int, rounds: int) -> list[dict[str, Any]]:
    from coral.version_control.repository import Repository

    done: list[dict[str, Any]] = []
    repo = Repository(repo_path)
    for i in range(rounds):
        if i % 3 == 2:  # a fresh object now and then: its session starts empty
            repo.close()
            repo = Repository(repo_path)
        decoy = Repository(repo_path)  # another object of this process: never committed
        decoy.add_all_weights({f"decoy.p{worker}": value(worker, i, 9), "shared": value(0, 0)})
        tensors = {
            f"p{worker}.w": value(worker, i),
            "shared": value(worker, i, 1),
            "const": np.full(4, worker, dtype=np.int32),
        }
        removed: list[str] = []
        if i % 4 == 1:
            tensors[f"p{worker}.extra"] = value(worker, i, 2)
        elif i % 4 == 3:
            repo.remove_weight(f"p{worker}.extra")
            removed.append(f"p{worker}.extra")
        note = json.dumps({"worker": worker, "round": i}).encode()
        repo.add_all_weights(tensors)
        repo.add_files({"notes.json": note})
        decoy.close()
        h = repo.commit(f"worker {worker} round {i}", allow_empty=False)
        done.append(
            {
                "hash": h,
                "round": i,
                "tensors": {n: digest(a) for n, a in tensors.items()},
                "removed": removed,
                "files": {"notes.json": hashlib.sha256(note).hexdigest()},
            }
        )
    repo.close()
    return done


def stage_and_wait(repo_path: str) -> None:
    from coral.version_control.repository import Repository

    repo = Repository(repo_path)
    tid = repo.add_weight("pending", np.arange(64, dtype=np.float64) + os.getpid())
    print(tid, flush=True)
    for line in sys.stdin:
        if line.strip() == "commit":
            print(repo.commit("pending"), flush=True)
        elif line.strip() == "exit":
            os._exit(0)  # no close: the session stays in the database, its owner gone


if __name__ == "__main__":
    if sys.argv[1] == "commit":
        print(json.dumps(commit_rounds(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    elif sys.argv[1] == "stage":
        stage_and_wait(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
