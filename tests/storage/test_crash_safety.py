"""SIGKILL a writer at random moments: what it reported stored reads back; nothing partial shows."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from coral.storage.base import CHUNK, TENSOR
from coral.storage.pack_store import PackStore

from .crash_writer import tensor_for

KILLS = int(os.environ.get("CORAL_CRASH_KILLS", "50"))


def test_sigkill_during_writes_never_leaves_partial_objects(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rnd = random.Random(1234)
    reported: dict[str, int] = {}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for i in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.crash_writer", str(root), str(i * 1000)],
            stdout=subprocess.PIPE,
            env=env,
            cwd=env["PYTHONPATH"],
        )
        # Wait for the writer to be busy, then kill it at a random moment.
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        assert first.startswith("STORED"), first
        time.sleep(rnd.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        for line in [first, *rest.decode().splitlines()]:
            if line.startswith("STORED "):
                _, tid, seed = line.split()
                reported[tid] = int(seed)
    assert len(reported) >= KILLS

    store = PackStore(root)
    for tid, seed in reported.items():
        assert store.load(tid).data.tobytes() == tensor_for(seed).tobytes()
    # Every object that is visible is whole: it verifies.
    for kind in (CHUNK, TENSOR):
        for oid in store.iter_objects(kind):
            store.verify(kind, oid)
