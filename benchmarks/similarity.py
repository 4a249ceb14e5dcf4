"""Similarity search benchmark: LSHIndex versus a numpy linear scan, side by side in one run.

For each size n (default 10^3, 10^4, 10^5) it indexes n random float32 vectors of dimension d
(default 10^4) among which near-duplicates of the query vectors are planted (cosine 0.990 to
0.998 to their query), then for each query times

- the scan: `block @ query / (norms * |query|)` over every vector (the norms are precomputed,
  the vectors are read block by block exactly as a matrix held in memory would be), and
- the LSH query: `LSHIndex.query(query)` (fingerprint the query, probe buckets, rank).

Recall is the fraction of the scan's neighbours with cosine >= 0.99 that the LSH query returns
among its candidates. Vectors are generated in blocks of `--block-rows` rows (10^5 x 10^4
float32 would be 4 GB), inserted with `LSHIndex.insert_batch` (one matrix product per block)
and scanned, so memory stays at one block.

Run: `python -m benchmarks.similarity [--sizes 1000 10000] [--dim 10000] [--queries 20]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np

from coral.core.lsh_index import LSHConfig, LSHIndex

NEIGHBOUR_COSINE = 0.99
# dup = query + sigma * noise, cosine 1/sqrt(1 + sigma^2): sigma in [0.07, 0.14] puts the planted
# neighbours at cosine 0.9903 .. 0.9976, near the 0.99 boundary where LSH recall is hardest
MIN_SIGMA, MAX_SIGMA = 0.07, 0.14


@dataclass
class Result:
    n: int
    dim: int
    build_s: float
    scan_ms: float
    lsh_ms: float
    candidates: float
    neighbours: int
    found: int
    avg_bucket: float

    @property
    def build_us_per_vector(self) -> float:
        return self.build_s / self.n * 1e6

    @property
    def speedup(self) -> float:
        return self.scan_ms / self.lsh_ms if self.lsh_ms else float("inf")

    @property
    def recall(self) -> float:
        return self.found / self.neighbours if self.neighbours else 1.0


def run_size(
    n: int, dim: int, queries: int, dups: int, block_rows: int, config: LSHConfig, seed: int
) -> Result:
    rng = np.random.default_rng([1, seed, n, dim])  # distinct prefix from the blocks' seeds
    qs = rng.standard_normal((queries, dim), dtype=np.float32)
    q_norms = np.linalg.norm(qs, axis=1)
    planted = rng.choice(n, size=min(n, queries * dups), replace=False)
    owner = {int(pos): (i % queries) for i, pos in enumerate(planted)}
    sigmas = {int(pos): float(rng.uniform(MIN_SIGMA, MAX_SIGMA)) for pos in planted}

    index = LSHIndex(dim, config)
    build_s = 0.0
    scan_s = [0.0] * queries
    truth: list[set[int]] = [set() for _ in range(queries)]
    for start in range(0, n, block_rows):
        rows = min(block_rows, n - start)
        block_rng = np.random.default_rng([2, seed, n, dim, start])
        block = block_rng.standard_normal((rows, dim), dtype=np.float32)
        for pos in range(start, start + rows):
            if pos in owner:
                noise = block_rng.standard_normal(dim, dtype=np.float32)
                block[pos - start] = qs[owner[pos]] + np.float32(sigmas[pos]) * noise

        t0 = time.perf_counter()
        index.insert_batch(block, list(range(start, start + rows)))
        build_s += time.perf_counter() - t0

        norms = np.linalg.norm(block, axis=1)  # part of the scan's own index, not timed per query
        for j in range(queries):
            t0 = time.perf_counter()
            cos = (block @ qs[j]) / (norms * q_norms[j])
            hits = np.flatnonzero(cos >= NEIGHBOUR_COSINE)
            scan_s[j] += time.perf_counter() - t0
            truth[j].update(int(start + h) for h in hits)

    index.query(qs[0])  # warm caches (plane matrix rows, block randomness)
    lsh_s: list[float] = []
    found = 0
    cand_counts = []
    for j in range(queries):
        t0 = time.perf_counter()
        cands = index.query(qs[j])
        lsh_s.append(time.perf_counter() - t0)
        cand_counts.append(len(cands))
        found += len(truth[j] & set(cands))
    return Result(
        n=n,
        dim=dim,
        build_s=build_s,
        scan_ms=statistics.median(scan_s) * 1e3,
        lsh_ms=statistics.median(lsh_s) * 1e3,
        candidates=statistics.mean(cand_counts),
        neighbours=sum(len(t) for t in truth),
        found=found,
        avg_bucket=float(index.get_stats()["avg_bucket_size"]),
    )


def print_table(results: list[Result], config: LSHConfig) -> None:
    headers = [
        "vectors",
        "dim",
        "build s",
        "build µs/vec",
        "scan ms/query",
        "LSH ms/query",
        "speedup",
        "candidates",
        "avg bucket",
        "neighbours",
        "recall@cos≥0.99",
    ]
    rows = [
        [
            f"{r.n:,}",
            f"{r.dim:,}",
            f"{r.build_s:.2f}",
            f"{r.build_us_per_vector:.1f}",
            f"{r.scan_ms:.2f}",
            f"{r.lsh_ms:.3f}",
            f"{r.speedup:.0f}x",
            f"{r.candidates:.0f}",
            f"{r.avg_bucket:.0f}",
            str(r.neighbours),
            f"{r.recall:.1%}",
        ]
        for r in results
    ]
    title = (
        f"LSHIndex (k={config.num_hyperplanes} hyperplanes, L={config.num_tables} tables, "
        f"max_candidates={config.max_candidates}) vs numpy linear scan"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
        for r in rows:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title)
    for h in headers:
        table.add_column(h, justify="right")
    for r in rows:
        table.add_row(*r)
    Console(width=200).print(table)


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--dups", type=int, default=3, help="near-duplicates planted per query")
    parser.add_argument("--block-rows", type=int, default=2_000)
    parser.add_argument("--hyperplanes", type=int, default=8)
    parser.add_argument("--tables", type=int, default=4)
    parser.add_argument("--max-candidates", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = LSHConfig(
        num_hyperplanes=args.hyperplanes, num_tables=args.tables, max_candidates=args.max_candidates
    )
    results = []
    for n in args.sizes:
        t0 = time.perf_counter()
        results.append(
            run_size(n, args.dim, args.queries, args.dups, args.block_rows, config, args.seed)
        )
        print(f"  n={n:,}: done in {time.perf_counter() - t0:.1f}s", flush=True)
    print_table(results, config)
    return results


if __name__ == "__main__":
    main()
