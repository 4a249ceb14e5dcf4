"""Streaming benchmark: `coral import` / `coral export` throughput and peak RSS versus
checkpoint size, beside plain safetensors (`save_file` + fsync; `load_file` + materialise).

Each measurement runs in its own process and its peak resident set is read from outside
(`getrusage(RUSAGE_CHILDREN)`). Coral should show flat memory (a few chunks per worker above
the interpreter) and linear time; plain safetensors holds the whole checkpoint in memory.

    python -m benchmarks.scale_streaming [--sizes 256 1024 2048] [--out DIR]

(`benchmarks/scale.py` calls `run(out=...)` as its streaming section.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.scale.streaming._data import model, write_checkpoint

MIB = 1 << 20
_PEAK = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
sys.exit(code)
"""
_PLAIN = r"""
import os, sys
from safetensors.numpy import load_file, save_file
kind, src, dst = sys.argv[1:4]
arrays = load_file(src)  # numpy: read and materialised
if kind == "save":
    save_file(arrays, dst)
    fd = os.open(dst, os.O_RDONLY); os.fsync(fd); os.close(fd)
"""


def _measure(argv: list[str], cwd: Path) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of one command in a process of its own."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, *argv], cwd=cwd, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {proc.stderr[-400:]}")
    return seconds, int(proc.stdout.strip().splitlines()[-1])


def run(sizes: list[int] | None = None, *, out: Path | None = None) -> list[dict[str, object]]:
    """One row per checkpoint size (MiB): MB/s and peak RSS (MiB) of each operation."""
    sizes = sizes or [256, 1024]
    coral = [sys.executable, "-m", "coral.cli.main"]
    rows: list[dict[str, object]] = []
    work = Path(tempfile.mkdtemp(prefix="coral-stream-"))
    try:
        for size in sizes:
            case = work / str(size)
            case.mkdir()
            src = write_checkpoint(case / "model.safetensors", model(size * MIB))
            nbytes = src.stat().st_size
            repo = case / "repo"
            subprocess.run([*coral, "init", str(repo)], check=True, capture_output=True)
            measured = {
                "coral import": _measure([*coral, "-C", str(repo), "import", str(src)], case),
                "coral export": _measure(
                    [*coral, "-C", str(repo), "export", "HEAD", str(case / "out.safetensors")],
                    case,
                ),
                "safetensors load": _measure(
                    [sys.executable, "-c", _PLAIN, "load", str(src), "-"], case
                ),
                "safetensors save+fsync": _measure(
                    [sys.executable, "-c", _PLAIN, "save", str(src), str(case / "plain.st")],
                    case,
                ),
            }
            row: dict[str, object] = {"size_mib": size}
            for op, (seconds, peak) in measured.items():
                row[f"{op} MB/s"] = round(nbytes / MIB / seconds, 1)
                row[f"{op} peak MiB"] = peak // MIB
            rows.append(row)
            shutil.rmtree(case)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _print(rows)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "streaming.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _print(rows: list[dict[str, object]]) -> None:
    ops = ["coral import", "coral export", "safetensors load", "safetensors save+fsync"]
    print(f"  {'size':>6}  {'operation':<24}{'MB/s':>8}{'peak MiB':>10}")
    for row in rows:
        for op in ops:
            rate, peak = row[f"{op} MB/s"], row[f"{op} peak MiB"]
            print(f"  {row['size_mib']:>6}  {op:<24}{rate:>8}{peak:>10}")
    print("  (MB/s of checkpoint bytes; peak = resident set of the process; the safetensors")
    print("   baselines (load + materialise, save_file + fsync) hold the whole checkpoint)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--out", type=Path, default=Path("bench-out/scale/scale_streaming"))
    args = parser.parse_args(argv)
    run(args.sizes, out=args.out)


if __name__ == "__main__":
    main()
