"""History benchmark: many small commits, then the history operations a user runs.

Builds a repository of `--commits` small commits (a few tensors, one of them nudged each step)
and, side by side, the plain alternative: one safetensors file per commit. Then times

    log (whole history), status, checkout of an old commit (and back),
    get_all_weights of an old commit

and prints each next to the plain alternative: reading the same commit's tensors from its
safetensors file (and, for log, reading the header of every file). Ratios are Coral / plain.

    python -m benchmarks.history [--commits 1000] [--tensors 4] [--dim 64] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from coral.version_control.repository import Repository


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def build(
    root: Path, commits: int, tensors: int, dim: int
) -> tuple[Repository, Path, list[str], float, float]:
    repo = Repository.init(root / "coral")
    plain = root / "safetensors"
    plain.mkdir()
    rng = np.random.default_rng(0)
    weights = {
        f"layer{i}.weight": rng.standard_normal((dim, dim)).astype(np.float32)
        for i in range(tensors)
    }
    hashes: list[str] = []
    t_coral = t_plain = 0.0
    for i in range(commits):
        name = f"layer{i % tensors}.weight"
        weights[name] = weights[name] + rng.standard_normal((dim, dim)).astype(np.float32) * 1e-3
        t0 = time.perf_counter()
        repo.add_all_weights({name: weights[name]} if i else weights)
        hashes.append(repo.commit(f"step {i}"))
        t1 = time.perf_counter()
        save_file(weights, str(plain / f"commit_{i:06d}.safetensors"))
        t2 = time.perf_counter()
        t_coral += t1 - t0
        t_plain += t2 - t1
    return repo, plain, hashes, t_coral, t_plain


def run(
    commits: int, tensors: int, dim: int, out: Path | None, repeat: int
) -> list[tuple[str, float, float]]:
    root = Path(tempfile.mkdtemp(prefix="coral-history-")) if out is None else out
    if out is not None:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    repo, plain, hashes, t_commit, t_save = build(root, commits, tensors, dim)
    old_index = max(0, commits // 10)
    old = hashes[old_index]
    old_file = plain / f"commit_{old_index:06d}.safetensors"
    files = sorted(plain.iterdir())

    def read_plain() -> object:
        return load_file(str(old_file))

    def read_headers() -> object:
        out = []
        for f in files:
            with safe_open(str(f), framework="numpy") as fh:
                out.append(fh.metadata())
        return out

    def checkout_old_and_back() -> object:
        repo.checkout(old)
        return repo.checkout("main")

    def fresh_log() -> object:  # a new process would start with empty caches
        repo._commits.clear()
        return repo.log()

    t_plain_read = _median_time(read_plain, repeat)
    rows = [
        ("commit (per commit, incl. add)", t_commit / commits, t_save / commits),
        (
            f"log ({commits} commits, cold)",
            _median_time(fresh_log, max(1, repeat // 5)),
            _median_time(read_headers, max(1, repeat // 5)),
        ),
        ("status", _median_time(repo.status, repeat), t_plain_read),
        ("checkout old commit + back", _median_time(checkout_old_and_back, repeat), t_plain_read),
        (
            "get_all_weights(old commit)",
            _median_time(lambda: repo.get_all_weights(old), repeat),
            t_plain_read,
        ),
    ]
    expected = load_file(str(old_file))
    got = repo.get_all_weights(old)
    assert all(got[k].data.tobytes() == expected[k].tobytes() for k in expected), "not bit-exact"
    print(f"\nhistory benchmark: {commits} commits x {tensors} tensors of {dim}x{dim} float32\n")
    print(f"{'operation':<34}{'coral':>12}{'plain':>12}{'coral/plain':>13}   plain = ")
    for label, coral_t, plain_t in rows:
        what = (
            "save_file"
            if label.startswith("commit")
            else ("headers of every file" if label.startswith("log") else "load_file(old commit)")
        )
        ratio = coral_t / plain_t
        times = f"{coral_t * 1e3:>10.2f}ms{plain_t * 1e3:>10.2f}ms"
        print(f"{label:<34}{times}{ratio:>12.2f}x   {what}")
    coral_bytes = _dir_bytes(repo.coral_dir)
    plain_bytes = _dir_bytes(plain)
    print(
        f"\n{'disk':<34}{coral_bytes / 2**20:>10.2f}MB{plain_bytes / 2**20:>10.2f}MB"
        f"{coral_bytes / plain_bytes:>12.2f}x"
    )
    repo.close()
    if out is None:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--tensors", type=int, default=4)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="keep the repositories here")
    args = parser.parse_args()
    run(args.commits, args.tensors, args.dim, args.out, args.repeat)


if __name__ == "__main__":
    main()
