"""`coral browse` on a long history: time to first paint and to open a diff, beside `coral log`.

Builds two repositories of small commits (a few 64x64 float32 tensors, one nudged per commit,
a side branch merged back every 100 commits, a metric on each), cached under
`bench-out/tui/`: one of 10 commits and one of `--commits` (default 10⁴). Then, on each:

    coral log --oneline        the whole history printed (a new process, as a user runs it)
    coral log -n 60 --oneline  one screenful
    browse: first paint        `coral browse` in tmux (a new process) until the screen shows
                               HEAD's hash, the refs and the first commit's tensors
    browse (in process)        BrowseApp headless: start until the log and the detail are drawn
    browse: open diff          `d` on HEAD (against its parent) until the diff table is filled
    browse: jump to root       `g` to the first commit: every page of the log is read
    coral diff HEAD~1 HEAD     the same diff from the command line

    python -m benchmarks.tui [--commits 10000] [--repeat 3] [--out bench-out/tui] [--no-tmux]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

from coral.version_control.repository import Repository

SCREEN_COMMITS = 60
TENSORS, DIM = 4, 64


def build(path: Path, commits: int) -> Path:
    """A repository of `commits` small commits at `path` (kept: built once per size)."""
    done = path / ".built"
    if done.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    repo = Repository.init(path)
    repo.config_path.write_text(repo.config_path.read_text() + "\n[storage]\nfsync = false\n")
    repo.close()
    repo = Repository(path)
    rng = np.random.default_rng(0)
    weights = {
        f"layer.{i}.weight": rng.standard_normal((DIM, DIM)).astype(np.float32)
        for i in range(TENSORS)
    }
    t0 = time.perf_counter()
    for i in range(commits):
        name = f"layer.{i % TENSORS}.weight"
        weights[name] = weights[name] + np.float32(1e-3)
        repo.add_all_weights(weights if i == 0 else {name: weights[name]})
        repo.commit(f"step {i}", metadata={"metrics": {"loss": 1.0 / (i + 1)}})
        if i % 100 == 50 and i + 10 < commits:  # a side branch with one commit ...
            repo.create_branch(f"side-{i}")
            repo.checkout(f"side-{i}")
            repo.add_weight("side.weight", np.full(8, i, np.float32))
            repo.commit(f"side work {i}")
            repo.checkout("main")
        if i % 100 == 60 and i > 60:  # ... merged back ten commits later
            repo.merge(f"side-{i - 10}", message=f"merge side-{i - 10}")
        if i % 500 == 499:  # a fresh Repository: PackStore retires (never closes) pack fds
            repo.close()  # past 256, so one object writing 10⁴ commits runs out of them
            repo = Repository(path)
        if commits >= 1000 and i % 1000 == 999:
            rate = (i + 1) / (time.perf_counter() - t0)
            print(f"  built {i + 1} of {commits} commits ({rate:.0f}/s)", file=sys.stderr)
    repo.tag_version("v1", "the latest")
    repo.close()
    done.touch()
    return path


def _median(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def time_coral(repo: Path, *args: str, columns: int = 80) -> float:
    """Seconds one `coral ARGS` process takes on `repo` (start-up included), output discarded."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "-C", str(repo), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": str(columns)},
    )
    return time.perf_counter() - t0


def _tmux_first_paint(repo: Path) -> float:
    """A new `coral browse` in an 80x24 tmux pane, until HEAD's hash and its tensors show."""
    head = Repository(repo).head_commit() or ""
    socket = f"coral-bench-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", socket]
    env = {**os.environ, "LANG": "C.UTF-8"}
    env.pop("TMUX", None)
    browse = f"{sys.executable} -m coral.cli.main -C {repo} browse"
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24",
                    "bash --norc --noprofile"], check=True, env=env)  # fmt: skip
    try:
        time.sleep(0.3)
        subprocess.run([*tmux, "send-keys", "-l", browse], check=True, env=env)
        t0 = time.perf_counter()
        subprocess.run([*tmux, "send-keys", "Enter"], check=True, env=env)
        while time.perf_counter() - t0 < 120:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p"], capture_output=True, text=True, env=env
            ).stdout
            if head[:10] in screen and "layer.0.weight" in screen:
                return time.perf_counter() - t0
            time.sleep(0.01)
        raise RuntimeError(f"coral browse did not paint within 120 s:\n{screen}")
    finally:
        subprocess.run([*tmux, "send-keys", "q"], env=env)
        time.sleep(0.3)
        subprocess.run([*tmux, "kill-server"], env=env, capture_output=True)


def _in_process(repo_path: Path) -> dict[str, float]:
    """First paint, open diff and jump to the root, headless (textual's pilot)."""
    from coral.tui.app import BrowseApp
    from coral.tui.diff_screen import DiffScreen

    times: dict[str, float] = {}

    async def until(pilot: object, done: Callable[[], bool]) -> None:
        while not done():
            await pilot.pause(0.005)  # type: ignore[attr-defined]

    async def run() -> None:
        t0 = time.perf_counter()
        app = BrowseApp(Repository(repo_path, shared_staging=True))
        async with app.run_test(size=(80, 24)) as pilot:
            main = app.main
            await until(pilot, lambda: main.detail.detail is not None)
            times["first paint"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            await pilot.press("d")
            await until(
                pilot, lambda: isinstance(app.screen, DiffScreen) and app.screen.diff is not None
            )
            times["open diff"] = time.perf_counter() - t1
            await pilot.press("escape")
            root = next(c for c in app.session.repo.iter_commits() if not c.parent_hashes)
            t2 = time.perf_counter()
            main.log_view.jump_to(root.commit_hash)
            await until(pilot, lambda: main.log_view.selected == root)
            times["jump to root"] = time.perf_counter() - t2
            app.session.repo.close()

    asyncio.run(run())
    return times


def run(commits: int, repeat: int, out: Path, tmux: bool) -> list[tuple[str, float, float]]:
    small = build(out / "commits-10", 10)
    large = build(out / f"commits-{commits}", commits)
    rows: list[tuple[str, Callable[[Path], float]]] = [
        ("coral log --oneline (all)", lambda p: time_coral(p, "log", "--oneline")),
        (
            f"coral log -n {SCREEN_COMMITS} --oneline",
            lambda p: time_coral(p, "log", "-n", "60", "--oneline"),
        ),
    ]
    if tmux and shutil.which("tmux"):
        rows.append(("coral browse: first paint (tmux)", _tmux_first_paint))
    rows.append(("coral diff HEAD~1 HEAD", lambda p: time_coral(p, "diff", "HEAD~1", "HEAD")))
    results = []
    for label, fn in rows:
        a = _median(lambda f=fn: f(small), repeat)
        b = _median(lambda f=fn: f(large), repeat)
        results.append((label, a, b))
    inproc = {"small": [_in_process(small) for _ in range(repeat)]}
    inproc["large"] = [_in_process(large) for _ in range(repeat)]
    for key in ("first paint", "open diff", "jump to root"):
        a = statistics.median(t[key] for t in inproc["small"])
        b = statistics.median(t[key] for t in inproc["large"])
        results.append((f"browse (in process): {key}", a, b))
    print(f"\n`coral browse` benchmark: 10 vs {commits} commits ({TENSORS} tensors of "
          f"{DIM}x{DIM} float32, merges every 100), median of {repeat}\n")  # fmt: skip
    print(f"{'operation':<40}{'10 commits':>12}{f'{commits} commits':>16}{'ratio':>9}")
    for label, a, b in results:
        print(f"{label:<40}{a * 1e3:>10.0f}ms{b * 1e3:>14.0f}ms{b / a:>8.2f}x")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out") / "tui")
    parser.add_argument("--no-tmux", action="store_true", help="skip the real-terminal timing")
    args = parser.parse_args()
    run(args.commits, args.repeat, args.out, not args.no_tmux)


if __name__ == "__main__":
    main()
