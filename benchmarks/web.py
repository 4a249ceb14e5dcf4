"""`coral serve` page times: 10 vs 10⁴ commits, and a 1 000-tensor model, beside the CLI.

Repositories (cached under `bench-out/`): the history benchmark's of `coral browse`
(`benchmarks/tui.py`: 4 tensors of 64x64 float32, one nudged per commit, a metric on each, a
side branch merged back every 100 commits) at 10 and `--commits` (default 10⁴) commits, and one
of a 1 000-tensor model (`--tensors`) with three commits. The dashboard runs in this process
(uvicorn on a free loopback port); each page is fetched over real HTTP:

    cold   a fresh server's first request (the history walk, the storage pass are made then)
    warm   the median of `--repeat` further requests (served from what the first one kept)

and beside each page the CLI command a user would run for the same data (a new process, as a
user runs it: `coral log -n 50 --json`, `coral show`, `coral diff`, `coral stats --json`).

    python -m benchmarks.web [--commits 10000] [--tensors 1000] [--repeat 5] [--out bench-out]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks.tui import build as build_history
from benchmarks.tui import time_coral
from coral.version_control.repository import Repository

PAGES_HISTORY = [
    ("overview /", "/", ["log", "-n", "1"]),
    ("history page 1", "/log", ["log", "-n", "50", "--json"]),
    ("history, last page", "/log?page=100000", ["log", "--json"]),
    ("all refs page 1", "/log?all=true", None),
    ("commit HEAD", "/commit/HEAD", ["show", "HEAD", "--json"]),
    ("diff HEAD~1 HEAD", "/diff?from=HEAD~1&to=HEAD", ["diff", "HEAD~1", "HEAD", "--json"]),
    ("metrics (500 commits)", "/metrics", None),
    ("storage", "/storage", ["stats", "--json"]),
    ("activity", "/activity", None),
    ("api: log page 1", "/api/log", None),
]
PAGES_WIDE = [
    ("commit HEAD (100 of 1000)", "/commit/HEAD", ["show", "HEAD", "--json"]),
    ("commit HEAD, page 10", "/commit/HEAD?page=9", None),
    ("tensor", "/tensor?ref=HEAD&name=block.7.attn.weight", ["show", "HEAD:block.7.attn.weight"]),
    ("diff HEAD~1 HEAD", "/diff?from=HEAD~1&to=HEAD", ["diff", "HEAD~1", "HEAD", "--json"]),
    ("api: tensors page 1", "/api/tensors?ref=HEAD", None),
    ("storage", "/storage", ["stats", "--json"]),
]


def build_wide(path: Path, tensors: int) -> Path:
    """Three commits of a `tensors`-tensor model (blocks of 4 modules, 64 float32 each)."""
    done = path / ".built"
    if done.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    repo = Repository.init(path)
    rng = np.random.default_rng(0)
    modules = ("attn.weight", "attn.bias", "mlp.weight", "mlp.bias")
    weights = {
        f"block.{i // 4}.{modules[i % 4]}": rng.standard_normal(64).astype(np.float32)
        for i in range(tensors)
    }
    for step in range(3):
        for k, name in enumerate(weights):
            if k % 2 == step % 2:
                weights[name] = weights[name] + np.float32(1e-3)
        repo.add_all_weights(weights)
        repo.commit(f"step {step}", metadata={"metrics": {"loss": 1.0 / (step + 1)}})
    repo.close()
    done.touch()
    return path


def _get(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        response.read()
        assert response.status == 200, url
    return time.perf_counter() - t0


def measure(
    repo_path: Path, pages: list[tuple[str, str, list[str] | None]], repeat: int
) -> dict[str, tuple[float, float, float | None]]:
    """label -> (cold, warm median, CLI median or None)."""
    from coral.web.app import create_app
    from coral.web.server import background_server

    out: dict[str, tuple[float, float, float | None]] = {}
    for label, path, cli in pages:
        repo = Repository(repo_path, shared_staging=True)
        with background_server(create_app(repo)) as base:  # a fresh server per page: cold
            cold = _get(base + path)
            warm = statistics.median(_get(base + path) for _ in range(repeat))
        repo.close()
        cli_time = (
            statistics.median(time_coral(repo_path, *cli, columns=100) for _ in range(repeat))
            if cli
            else None
        )
        out[label] = (cold, warm, cli_time)
    return out


def _ms(t: float | None) -> str:
    return "-" if t is None else f"{t * 1e3:.0f}ms"


def run(commits: int, tensors: int, repeat: int, out: Path) -> None:
    small = build_history(out / "tui" / "commits-10", 10)
    large = build_history(out / "tui" / f"commits-{commits}", commits)
    wide = build_wide(out / "web" / f"tensors-{tensors}", tensors)
    a = measure(small, PAGES_HISTORY, repeat)
    b = measure(large, PAGES_HISTORY, repeat)
    print(f"\n`coral serve` page times: 10 vs {commits} commits, median of {repeat} (warm), "
          "over HTTP on loopback; CLI = the same data from `coral` in a new process\n")  # fmt: skip
    head = f"{'page':<24}{'10: cold':>10}{'warm':>8}{f'{commits}: cold':>14}{'warm':>8}"
    print(head + f"{'CLI 10':>10}{f'CLI {commits}':>12}")
    for label, _, _ in PAGES_HISTORY:
        (c1, w1, l1), (c2, w2, l2) = a[label], b[label]
        print(f"{label:<24}{_ms(c1):>10}{_ms(w1):>8}{_ms(c2):>14}{_ms(w2):>8}"
              f"{_ms(l1):>10}{_ms(l2):>12}")  # fmt: skip
    w = measure(wide, PAGES_WIDE, repeat)
    print(f"\n{tensors}-tensor model (3 commits): page times beside the CLI\n")
    print(f"{'page':<28}{'cold':>9}{'warm':>9}{'CLI':>9}")
    for label, _, _ in PAGES_WIDE:
        cold, warm, cli = w[label]
        print(f"{label:<28}{_ms(cold):>9}{_ms(warm):>9}{_ms(cli):>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--tensors", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args()
    run(args.commits, args.tensors, args.repeat, args.out)


if __name__ == "__main__":
    main()
