"""Cluster encode: one checkpoint imported (and exported) with local threads, then with a
2-worker Dask cluster on loopback (real worker processes, `distributed.LocalCluster`).

    python -m benchmarks.scale_cluster [--mib 64] [--workers 2] [--out bench-out/scale_cluster]

Rows: import of a base checkpoint (every chunk FULL), import of a fine-tune of it (every chunk
against the base's), export of the fine-tune (every chunk decoded), each in MiB/s; `ratio` is
cluster / local threads. On one machine the cluster pays for moving every chunk through
sockets; it wins when its workers have cores this machine lacks. The bytes stored are the same
either way (checked here: every chunk and tensor record of the two repositories).
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from coral.porcelain.cluster import use_cluster
from coral.porcelain.export import export_commit
from coral.porcelain.import_ import import_checkpoint
from coral.storage.base import CHUNK, TENSOR
from coral.version_control.repository import Repository


def checkpoints(folder: Path, mib: int) -> tuple[Path, Path]:
    """base.safetensors (`mib` MiB of float32 in 16 tensors) and a fine-tune of it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = max(1, mib * (1 << 20) // 4 // 16)
    base = {f"layer{i}.weight": rng.standard_normal(n, np.float32) for i in range(16)}
    tuned = {k: v + np.float32(1e-3) * rng.standard_normal(n, np.float32) for k, v in base.items()}
    paths = folder / "base.safetensors", folder / "tuned.safetensors"
    save_file(base, str(paths[0]))
    save_file(tuned, str(paths[1]))
    return paths


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    path: Path, base: Path, tuned: Path, address: str | None
) -> tuple[dict[str, float], dict]:
    """Seconds of each step in a fresh repository at `path` (address None: local threads)."""
    shutil.rmtree(path, ignore_errors=True)
    Repository.init(path).close()
    times: dict[str, float] = {}
    with Repository(path) as repo:
        use_cluster(repo, address or "local")
        times["import base"] = _timed(lambda: import_checkpoint(repo, base))
        times["import fine-tune"] = _timed(lambda: import_checkpoint(repo, tuned))
        out = path.parent / f"{path.name}-export.safetensors"
        times["export fine-tune"] = _timed(lambda: export_commit(repo, "HEAD", out))
        out.unlink()
    with Repository(path) as repo:  # after the background repack
        store = repo.store
        records = {
            (k, oid): store.read_raw(k, oid) for k in (CHUNK, TENSOR) for oid in store.list_blobs(k)
        }
    return times, records


def run(out: Path = Path("bench-out/scale_cluster"), mib: int = 64, workers: int = 2) -> list:
    """Measure, print the table, return its rows."""
    from distributed import LocalCluster

    base, tuned = checkpoints(out / "models", mib)
    local, local_records = measure(out / "local", base, tuned, None)
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster:
        remote, remote_records = measure(out / "cluster", base, tuned, cluster.scheduler_address)
    rows = [
        {
            "step": step,
            "MiB": mib,
            "local MiB/s": mib / local[step],
            f"{workers}-worker MiB/s": mib / remote[step],
            "ratio": local[step] / remote[step],
        }
        for step in local
    ]
    print(f"  {'step':<18}{'MiB':>6}{'local MiB/s':>14}{f'{workers}-worker MiB/s':>18}{'ratio':>8}")
    for row in rows:
        values = list(row.values())
        print(
            f"  {values[0]:<18}{values[1]:>6}{values[2]:>14.1f}{values[3]:>18.1f}{values[4]:>8.2f}"
        )
    same = local_records == remote_records
    print(f"  records stored: {len(remote_records)}, identical to the local run: {same}")
    print("  ratio = cluster throughput / local threads throughput.")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-out/scale_cluster"))
    args = parser.parse_args(argv)
    run(args.out, args.mib, args.workers)


if __name__ == "__main__":
    main()
