"""Import / export memory benchmark: peak RSS of `coral import` and `coral export` of one big
safetensors checkpoint, beside the checkpoint's size and what plain safetensors needs to load
and save the same file (`load_file` + materialise, `save_file`). Each runs in its own process.

    python -m benchmarks.import_memory [--mb 1024] [--tensors 64] [--out DIR]

Coral streams: a checkpoint is read tensor by tensor and stored in batches of at most 256 MiB,
and an export reads each tensor from the store as the writer reaches it; so its peak should
stay near the interpreter's baseline plus one batch, not grow with the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
kind, a, b = sys.argv[1:4]
if kind == "baseline":
    import numpy, safetensors.numpy  # noqa: F401  (what every child imports)
elif kind == "plain-load":
    from safetensors.numpy import load_file
    arrays = {k: v.copy() for k, v in load_file(a).items()}
elif kind == "plain-save":
    from safetensors.numpy import load_file, save_file
    save_file(load_file(a), b)
elif kind == "coral-import":
    from pathlib import Path
    from coral.porcelain import import_checkpoint
    from coral.version_control.repository import Repository
    repo = Repository.init(b)
    import_checkpoint(repo, Path(a))
    repo.close()
elif kind == "coral-export":
    from pathlib import Path
    from coral.porcelain import export_commit
    from coral.version_control.repository import Repository
    repo = Repository(a)
    export_commit(repo, "HEAD", Path(b))
    repo.close()
# VmHWM: this address space's peak (ru_maxrss would carry the parent's over exec)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
peak = int(hwm.split()[1]) * 1024
print(json.dumps({"peak": peak, "seconds": time.perf_counter() - t0}))
"""


def _run(kind: str, a: str = "-", b: str = "-") -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, a, b], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="checkpoint size in MiB")
    parser.add_argument("--tensors", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table
    from safetensors.numpy import save_file

    work = Path(tempfile.mkdtemp(prefix="coral-bench-mem-"))
    try:
        rng = np.random.default_rng(0)
        per = (args.mb << 20) // args.tensors // 4
        arrays = {
            f"layer.{i}.weight": rng.standard_normal(per, dtype=np.float32)
            for i in range(args.tensors)
        }
        ckpt = work / "model.safetensors"
        save_file(arrays, str(ckpt))
        del arrays
        size = ckpt.stat().st_size
        rows = {
            "baseline (imports only)": _run("baseline"),
            "safetensors load + materialise": _run("plain-load", str(ckpt)),
            "safetensors load + save": _run(
                "plain-save", str(ckpt), str(work / "copy.safetensors")
            ),
            "coral import": _run("coral-import", str(ckpt), str(work / "repo")),
            "coral export": _run("coral-export", str(work / "repo"), str(work / "out.safetensors")),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = rows["baseline (imports only)"]["peak"]
    table = Table(title=f"peak memory, one {size / 2**20:.0f} MiB safetensors checkpoint")
    for col in ("operation", "peak RSS MiB", "above baseline MiB", "x checkpoint", "seconds"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for name, r in rows.items():
        above = max(0.0, r["peak"] - base)
        table.add_row(
            name,
            f"{r['peak'] / 2**20:.0f}",
            f"{above / 2**20:.0f}",
            f"{above / size:.2f}",
            f"{r['seconds']:.2f}",
        )
    Console(width=100).print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "import_memory.json").write_text(json.dumps({"size": size, **rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
