"""A checkpoint several GiB large imports and exports with flat peak memory.

`coral import` and `coral export` run as subprocesses; their peak resident set is read from
outside (`getrusage(RUSAGE_CHILDREN)` after each one, in a fresh child that runs it) and
compared with the same commands on a tiny checkpoint: the difference must be a few chunks per
worker, not the checkpoint's size.

Size: `CORAL_SCALE_CHECKPOINT_GIB` (default 3: about 35 s on two cores, with 9 GiB of scratch
disk for the checkpoint, the store and the export; a float, e.g. 0.5 for a quick run).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.scale.streaming._data import model, write_checkpoint

GIB = float(os.environ.get("CORAL_SCALE_CHECKPOINT_GIB", "3"))
CHUNK = 4 << 20  # the default chunk size
WORKERS = 2
# What may be resident beyond the tiny run: a window of 2 chunks per worker in flight, each
# with its planes, its encoded record and the reference chunk, plus allocator slack.
BOUND = 12 * WORKERS * CHUNK + (48 << 20)

_PEAK = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
sys.exit(code)
"""


def peak_rss(*args: str, cwd: Path) -> int:
    """Peak RSS in bytes of `coral ARGS` (measured by a parent of its own)."""
    env = {k: v for k, v in os.environ.items() if k != "CORAL_DASK_SCHEDULER"}
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "coral.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1])


def init(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "coral.cli.main", "init", str(path)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "coral.cli.main",
            "-C",
            str(path),
            "config",
            "set",
            "storage.workers",
            str(WORKERS),
        ],
        check=True,
        capture_output=True,
    )
    return path


def tensors(path: Path) -> dict[str, np.ndarray]:
    """name -> flat uint8 memory map of each tensor's bytes (nothing read yet)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {
        name: np.memmap(path, np.uint8, "r", 8 + n + a, (b - a,))
        for name, info in header.items()
        for a, b in [info["data_offsets"]]
    }


def same_tensors(a: Path, b: Path) -> bool:
    ta, tb = tensors(a), tensors(b)
    if ta.keys() != tb.keys():
        return False
    step = 64 << 20
    for name, x in ta.items():
        y = tb[name]
        if x.size != y.size:
            return False
        for s in range(0, x.size, step):
            if not np.array_equal(x[s : s + step], y[s : s + step]):
                return False
    return True


def test_import_export_memory_is_flat(tmp_path: Path) -> None:
    tiny = write_checkpoint(tmp_path / "tiny.safetensors", model(8 << 20, 4 << 20, seed=100))
    big = write_checkpoint(tmp_path / "big.safetensors", model(int(GIB * (1 << 30))))
    small, large = init(tmp_path / "small"), init(tmp_path / "large")

    base_import = peak_rss("-C", str(small), "import", str(tiny), cwd=tmp_path)
    big_import = peak_rss("-C", str(large), "import", str(big), cwd=tmp_path)
    out_tiny = tmp_path / "tiny-out.safetensors"
    base_export = peak_rss("-C", str(small), "export", "HEAD", str(out_tiny), cwd=tmp_path)
    out = tmp_path / "out.safetensors"
    big_export = peak_rss("-C", str(large), "export", "HEAD", str(out), cwd=tmp_path)

    size = big.stat().st_size
    mib = 1 << 20
    assert big_import - base_import < BOUND, (big_import // mib, base_import // mib, size // mib)
    assert big_export - base_export < BOUND, (big_export // mib, base_export // mib, size // mib)
    assert same_tensors(big, out)
    assert same_tensors(tiny, out_tiny)
