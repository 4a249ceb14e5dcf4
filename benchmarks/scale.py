"""Scale benchmark: long histories beside git, then streaming and cluster sections.

(1) History: for each length in `--lengths` (default 10², 10³, 10⁴ commits) a Coral repository
(`build_history`: one tiny tensor changed per commit, written in batches of packs through the
store, so 10⁴ commits build in seconds) and a git repository of the same length (`git
fast-import`, one small file changed per commit). Times `coral log -n 20`, `coral status` and
`coral branch` beside `git log -n 20`, `git status` and `git branch`, each as a fresh process
(median of `--repeat`), and the same Coral commands in one warm process (the command's own time,
without interpreter start-up); also `coral --help` and a bare `python -c pass`.

(2) Streaming: `benchmarks.scale_streaming.run(out=...)` when that module exists.
(3) Cluster: `benchmarks.scale_cluster.run(out=...)` when that module exists.

    python -m benchmarks.scale [--lengths 100 1000 10000] [--repeat 5] [--out bench-out/scale]
                               [--skip-streaming] [--skip-cluster]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from coral.core.hashing import hash_blob
from coral.core.weight_tensor import WeightTensor
from coral.version_control.objects import COMMIT, TREE, Commit, Tree, TreeEntry
from coral.version_control.repository import Repository

CORAL_OPS = (("log -n 20", ["log", "-n", "20"]), ("status", ["status"]), ("branch", ["branch"]))
GIT_OPS = (["log", "-n", "20"], ["status"], ["branch"])
BATCH = 1000  # commits per pack while building


def build_history(path: Path, commits: int, *, batch: int = BATCH) -> Repository:
    """A repository at `path` of `commits` commits in a line on `main`: the first through
    `Repository.commit` (tensors `w` and `b`), each later one changing `w` (4 float32 values)
    and carrying a `loss` metric. Later commits are written `batch` at a time, tensors in one
    pack and trees + commits in another, then `main` is moved once: valid objects (fsck
    passes), built in seconds. Returns the open repository (HEAD at the last commit)."""
    repo = Repository.init(path)
    repo.add_all_weights({"w": np.zeros(4, np.float32), "b": np.ones(2, np.float32)})
    parent = repo.commit("step 0", metadata={"metrics": {"loss": 1.0}})
    first = repo.read_commit(parent)
    base = repo.read_tree(first.tree_id)
    w = base.entries["w"]
    for lo in range(1, commits, batch):
        steps = range(lo, min(commits, lo + batch))
        tensors = [WeightTensor(np.full(4, i, np.float32)) for i in steps]
        ids = repo.store.store_many([(t, None) for t in tensors])
        blobs: list[tuple[str, bytes]] = []
        for i, tensor_id in zip(steps, ids, strict=True):
            entries = {**base.entries, "w": TreeEntry("w", tensor_id, w.shape, w.dtype)}
            tree = Tree(entries).encode()
            commit = Commit(
                hash_blob(TREE, tree),
                [parent],
                first.author,
                first.timestamp + i,
                f"step {i}",
                {"metrics": {"loss": 1.0 / (i + 1)}},
            ).encode()
            parent = hash_blob(COMMIT, commit)
            blobs += [(TREE, tree), (COMMIT, commit)]
        repo.store.put_blobs(blobs)
    if commits > 1:
        with repo.database.transaction() as tx:
            repo.refs.update_head(tx, parent, repo.refs.head(tx), f"commit: {commits} steps")
    return repo


def build_git_history(path: Path, commits: int) -> Path:
    """A git repository of `commits` commits on `main`, one small file changed in each,
    written by `git fast-import`."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    lines = []
    for i in range(commits):
        msg = f"step {i}\n".encode()
        content = f"{i}\n".encode()
        lines.append(b"commit refs/heads/main\n")
        lines.append(f"committer bench <bench@example.com> {1_700_000_000 + i} +0000\n".encode())
        lines.append(b"data %d\n%s" % (len(msg), msg))
        lines.append(b"M 644 inline w.txt\ndata %d\n%s\n" % (len(content), content))
    subprocess.run(["git", "fast-import", "--quiet"], input=b"".join(lines), cwd=path, check=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True)
    return path


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# A user's `coral` runs from compiled bytecode: a PYTHONDONTWRITEBYTECODE set for the test
# machine would make every fresh process compile the modules changed since the last install.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _process(argv: list[str], cwd: Path) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=_ENV)

    return run


def _coral_command() -> list[str]:
    """The installed `coral` script (what users run), else `python -m coral.cli.main`."""
    script = Path(sys.executable).parent / "coral"
    return [str(script)] if script.exists() else [sys.executable, "-m", "coral.cli.main"]


def _in_process(args: list[str], cwd: Path) -> Callable[[], object]:
    from coral.cli.main import main

    def run() -> object:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["-C", str(cwd), *args])
        assert code == 0, f"coral {' '.join(args)} exited {code}"
        return code

    return run


def history_section(lengths: list[int], repeat: int, out: Path) -> list[dict[str, object]]:
    coral = _coral_command()
    rows: list[dict[str, object]] = []
    floor = _median(_process([sys.executable, "-c", "pass"], out), repeat)
    help_s = _median(_process([*coral, "--help"], out), repeat)
    print(f"\n(1) history: `coral` beside `git` ({repeat} runs each, median)")
    print(f"python -c pass {floor * 1e3:.0f} ms; coral --help {help_s * 1e3:.0f} ms (start-up)\n")
    print(f"{'commits':>8} {'command':<10}{'coral':>9}{'in-proc':>9}{'git':>8}{'ratio':>8}")
    for n in lengths:
        shutil.rmtree(out / f"coral-{n}", ignore_errors=True)
        shutil.rmtree(out / f"git-{n}", ignore_errors=True)
        t0 = time.perf_counter()
        build_history(out / f"coral-{n}", n).close()
        built = time.perf_counter() - t0
        git = build_git_history(out / f"git-{n}", n)
        for (label, args), git_args in zip(CORAL_OPS, GIT_OPS, strict=True):
            path = out / f"coral-{n}"
            _in_process(args, path)()  # warm: imports and first-use costs
            _process([*coral, *args], path)()  # and the bytecode of a fresh process
            coral_s = _median(_process([*coral, *args], path), repeat)
            inproc_s = _median(_in_process(args, path), repeat)
            git_s = _median(_process(["git", *git_args], git), repeat)
            rows.append(
                {
                    "commits": n,
                    "command": label,
                    "coral_s": coral_s,
                    "in_process_s": inproc_s,
                    "git_s": git_s,
                    "build_s": built,
                }
            )
            print(
                f"{n:>8} {label:<10}{coral_s * 1e3:>7.0f}ms{inproc_s * 1e3:>7.0f}ms"
                f"{git_s * 1e3:>6.0f}ms{coral_s / git_s:>7.1f}x"
            )
    print("\ncoral = a fresh `coral` process; in-proc = the same command in a warm process;")
    print("ratio = coral / git.")
    return rows


def optional_section(title: str, module: str, out: Path) -> object:
    """Run `benchmarks.<module>.run(out=...)` when another part of the suite provides it."""
    print(f"\n{title}")
    try:
        bench = importlib.import_module(f"benchmarks.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"benchmarks.{module}":
            raise
        print(f"  benchmarks/{module}.py is not there: section skipped")
        return None
    return bench.run(out=out / module)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 1000, 10_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench-out/scale"))
    parser.add_argument("--skip-streaming", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    history_section(args.lengths, args.repeat, args.out)
    if not args.skip_streaming:
        optional_section("(2) streaming import / export", "scale_streaming", args.out)
    if not args.skip_cluster:
        optional_section(
            "(3) cluster encode: local threads vs a 2-worker cluster", "scale_cluster", args.out
        )


if __name__ == "__main__":
    main()
