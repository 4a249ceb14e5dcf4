"""`coral ci benchmark`: the standard load and size benchmark of a commit, and a user's
evaluation script whose metrics are recorded on the commit.

Measured, never estimated: bytes stored beside the raw size; the time to read every tensor of
the commit (each chunk checked against its checksum, as every local read is), tensor by tensor
as an export does; the peak of the memory allocated meanwhile (tracemalloc: Python objects and
numpy buffers). An evaluation script runs as a subprocess in the repository's folder with
`CORAL_REPO`, `CORAL_COMMIT`, `CORAL_REF` and `CORAL_WEIGHTS` (a safetensors export of the
commit) in its environment; the last line of its stdout that is a JSON object is its metrics.
Results go to the `ci_results` table (`coral.version_control.ci_results`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral.core.tensor_checks import element_count
from coral.core.training_names import is_training_state
from coral.errors import CoralError
from coral.porcelain.export import export_commit
from coral.storage.base import ObjectStats
from coral.version_control.audit import current_actor
from coral.version_control.ci_results import CIResults
from coral.version_control.repository import Repository

Advance = Callable[[int], None]
_TAIL_LINES = 5  # lines of a failed script's stderr a message quotes


@dataclass
class EvalResult:
    """What an evaluation script reported."""

    command: list[str]
    metrics: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": list(self.command),
            "metrics": dict(self.metrics),
            "seconds": self.seconds,
        }


@dataclass
class BenchmarkResult:
    """The measurements of one commit (and its evaluation, when one ran)."""

    ref: str
    commit_hash: str
    tensors: int
    parameters: int
    raw_bytes: int
    stored_bytes: int  # what the commit's distinct tensors take on disk (deltas, compression)
    load_seconds: float
    peak_memory: int  # bytes allocated at the peak of the load (tracemalloc)
    largest_tensor: int  # raw bytes of the largest tensor: a load holds at least that
    eval: EvalResult | None = None
    recorded: bool = False
    recorded_ids: list[int] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else None

    @property
    def throughput(self) -> float | None:
        """Raw bytes read per second."""
        return self.raw_bytes / self.load_seconds if self.load_seconds > 0 else None

    def measurements(self) -> dict[str, Any]:
        """The numbers recorded on the commit (kind `benchmark`)."""
        return {
            "tensors": self.tensors,
            "parameters": self.parameters,
            "raw_bytes": self.raw_bytes,
            "stored_bytes": self.stored_bytes,
            "ratio": self.ratio,
            "load_seconds": self.load_seconds,
            "throughput": self.throughput,
            "peak_memory": self.peak_memory,
            "largest_tensor": self.largest_tensor,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "commit": self.commit_hash,
            **self.measurements(),
            "eval": self.eval.to_dict() if self.eval else None,
            "recorded": self.recorded,
        }


def benchmark_commit(
    repo: Repository,
    ref: str = "HEAD",
    *,
    eval_script: str | None = None,
    record: bool = True,
    include_training_state: bool = False,
    timeout: float | None = None,
    progress: Advance | None = None,
) -> BenchmarkResult:
    """Measure the commit `ref` names; run `eval_script` (default: config `[ci] eval`) on it;
    with `record`, keep both on the commit (`CIResults`). `progress(1)` per tensor read."""
    commit = repo.get_commit(ref)
    tree = repo.read_tree(commit.tree_id)
    entries = [
        e for n, e in tree.entries.items() if include_training_state or not is_training_state(n)
    ]
    if not entries:
        raise CoralError(
            f"{ref} holds no model tensors to benchmark",
            hint=f"list its tensors with `coral show {ref}`",
        )
    stored = stored_bytes(repo, (e.tensor_id for e in entries))
    seconds, peak = _timed_load(repo, [e.tensor_id for e in entries], progress)
    result = BenchmarkResult(
        ref,
        commit.commit_hash,
        tensors=len(entries),
        parameters=sum(element_count(e.shape) for e in entries),
        raw_bytes=sum(e.nbytes for e in entries),
        stored_bytes=stored,
        load_seconds=seconds,
        peak_memory=peak,
        largest_tensor=max(e.nbytes for e in entries),
    )
    script = eval_script or configured_eval(repo.config)
    if script:
        result.eval = run_eval(repo, ref, script, timeout=timeout)
    if record:
        results, actor = CIResults(repo.database), current_actor(repo.config)
        result.recorded_ids.append(
            results.record(commit.commit_hash, "benchmark", result.measurements(), actor=actor)
        )
        if result.eval is not None:
            result.recorded_ids.append(
                results.record(commit.commit_hash, "eval", result.eval.to_dict(), actor=actor)
            )
        result.recorded = True
    return result


def stored_bytes(repo: Repository, tensor_ids: Iterable[str]) -> int:
    """Bytes the distinct `tensor_ids` take on disk (their chunks, deltas and compression)."""
    total = 0
    for tid in set(tensor_ids):
        stats = repo.store.stats(tid)
        total += stats.stored_bytes if isinstance(stats, ObjectStats) else 0
    return total


def _timed_load(
    repo: Repository, tensor_ids: list[str], progress: Advance | None
) -> tuple[float, int]:
    """Seconds to read every tensor (one at a time, each dropped), and the peak allocation."""
    repo.store.wait_for_maintenance()  # a background repack is not part of the read
    was_tracing = tracemalloc.is_tracing()
    if was_tracing:
        tracemalloc.reset_peak()
    else:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        start = time.perf_counter()
        for tid in tensor_ids:
            data = repo.store.load(tid).data
            del data
            if progress is not None:
                progress(1)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return seconds, max(peak, 0)


# -- evaluation scripts -------------------------------------------------------------------------


def configured_eval(config: Mapping[str, Any]) -> str | None:
    """The repository config's `[ci] eval` (a script or a command line), if set."""
    ci = config.get("ci")
    value = ci.get("eval") if isinstance(ci, Mapping) else None
    return str(value) if value else None


def eval_command(script: str, cwd: Path) -> list[str]:
    """A `.py` file runs with this Python; anything else is a command line (shell words)."""
    words = shlex.split(script)
    if not words:
        raise CoralError("the evaluation command is empty", hint="pass --eval SCRIPT.py")
    if words[0].endswith(".py"):
        path = Path(words[0])
        found = next((p for p in (path, cwd / path) if p.is_file()), None)
        if found is None:
            raise CoralError(
                f"no evaluation script {words[0]}",
                hint="give its path (relative to the current folder or the repository)",
            )
        return [sys.executable, str(found.absolute()), *words[1:]]
    return words


def run_eval(
    repo: Repository, ref: str, script: str, *, timeout: float | None = None
) -> EvalResult:
    """Export `ref` to a temporary safetensors file and run `script` on it; its metrics are the
    last JSON object line of its stdout."""
    commit = repo.get_commit(ref)
    command = eval_command(script, repo.path)
    with tempfile.TemporaryDirectory(prefix="coral-eval-") as tmp:
        weights = Path(tmp) / "weights.safetensors"
        export_commit(repo, commit.commit_hash, weights, fmt="safetensors")
        env = {
            **os.environ,
            "CORAL_REPO": str(repo.path),
            "CORAL_COMMIT": commit.commit_hash,
            "CORAL_REF": ref,
            "CORAL_WEIGHTS": str(weights),
        }
        start = time.perf_counter()
        try:
            done = subprocess.run(
                command,
                cwd=repo.path,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise CoralError(
                f"cannot run the evaluation command {command[0]!r}: not found",
                hint="give a script path ending in .py, or a command on PATH",
            ) from None
        except subprocess.TimeoutExpired:
            raise CoralError(
                f"the evaluation script ran past {timeout:g} s and was stopped",
                hint="raise --timeout, or make the evaluation smaller",
            ) from None
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-_TAIL_LINES:]
        raise CoralError(
            f"the evaluation script failed (exit {done.returncode}): {shlex.join(command)}"
            + "".join(f"\n{line}" for line in tail),
            hint="run it yourself with CORAL_WEIGHTS set to an export (`coral export`) to debug",
        )
    return EvalResult(command, parse_metrics_line(done.stdout), seconds)


def parse_metrics_line(stdout: str) -> dict[str, Any]:
    """The last line of `stdout` that is a JSON object."""
    for line in reversed(stdout.strip().splitlines()):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise CoralError(
        "the evaluation script printed no metrics",
        hint='print them as the last line of stdout: print(json.dumps({"accuracy": 0.91}))',
    )
