"""Tracking benchmark: the cost of logging one metric point, Coral beside MLflow.

    python -m benchmarks.tracking [--calls 1000000] [--mlflow-calls 2000] [--server]
                                  [--out bench-out]

A tight loop logs one scalar per call (`loss`, step i). Measured side by side in one process:

- Coral `tracker.log`, default settings: the call alone (the loop's wall time; the writer thread
  runs meanwhile and competes for the GIL), and with everything persisted (loop + `end()`).
- Coral `tracker.log` with writes held back until the loop ends: the in-memory append alone.
- MLflow `mlflow.log_metric` (fluent API, what a training script calls) against a local
  file store (`file:` URI) and a local SQLite store (`sqlite:` URI), and — with `--server` —
  against a real local `mlflow server` (HTTP on loopback).
- MLflow `MlflowClient.log_batch` with 1000 points per call (MLflow's fastest path), per point.

MLflow is slow per call, so it runs `--mlflow-calls` calls; every row is reported per call
(microseconds) and as a multiple of Coral's default `log` call. Results also go to
`<out>/tracking.json`. Every method's points are read back and counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    method: str
    calls: int
    seconds: float
    stored: int
    note: str = ""

    @property
    def us_per_call(self) -> float:
        return self.seconds / self.calls * 1e6


# -- Coral -------------------------------------------------------------------------------------
def coral_rows(workdir: Path, calls: int) -> list[Row]:
    from coral.experiments import ExperimentTracker
    from coral.version_control.repository import Repository

    rows = []
    repo = Repository.init(workdir / "coral-repo")
    try:
        # default settings: the writer thread flushes every 1000 points / 1 s meanwhile
        tracker = ExperimentTracker(repo)
        exp = tracker.start("bench-default")
        log = tracker.log
        t0 = time.perf_counter()
        for i in range(calls):
            log("loss", 1.0 / (i + 1), step=i)
        loop = time.perf_counter() - t0
        tracker.end()
        total = time.perf_counter() - t0
        stored = tracker.get(exp.experiment_id, include_metrics=False).summary["loss"]["count"]
        rows.append(
            Row(
                "coral tracker.log (default)",
                calls,
                loop,
                stored,
                "the call alone; the writer thread runs meanwhile, and once "
                "200,000 points wait (the default max_pending) the loop writes them itself",
            )
        )
        rows.append(
            Row(
                "coral tracker.log, persisted",
                calls,
                total,
                stored,
                "loop + end(): until every point is in SQLite",
            )
        )
        tracker.close()

        # writes held back: the cost of the append alone
        held = ExperimentTracker(
            repo, flush_every=calls + 1, max_pending=calls + 1, flush_interval=3600
        )
        exp = held.start("bench-append")
        log = held.log
        t0 = time.perf_counter()
        for i in range(calls):
            log("loss", 1.0 / (i + 1), step=i)
        loop = time.perf_counter() - t0
        t1 = time.perf_counter()
        held.end()
        write = time.perf_counter() - t1
        stored = held.get(exp.experiment_id, include_metrics=False).summary["loss"]["count"]
        rows.append(
            Row(
                "coral tracker.log (append only)",
                calls,
                loop,
                stored,
                f"one write of all points after the loop: {write:.2f} s",
            )
        )
        held.close()
    finally:
        repo.close()
    return rows


# -- MLflow ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def mlflow_fluent_row(uri: str, label: str, calls: int) -> Row:
    import mlflow
    from mlflow.tracking import MlflowClient

    with _quiet():
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(f"bench-{label}")
        with mlflow.start_run() as run:
            t0 = time.perf_counter()
            for i in range(calls):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
            seconds = time.perf_counter() - t0
        stored = len(MlflowClient(uri).get_metric_history(run.info.run_id, "loss"))
    return Row(f"mlflow.log_metric ({label})", calls, seconds, stored)


def mlflow_batch_row(uri: str, label: str, points: int) -> Row:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    with _quiet():
        exp_id = client.create_experiment(f"bench-batch-{label}-{time.time_ns()}")
        run_id = client.create_run(exp_id).info.run_id
        now = int(time.time() * 1000)
        t0 = time.perf_counter()
        for start in range(0, points, 1000):
            client.log_batch(
                run_id,
                metrics=[
                    Metric("loss", 1.0 / (i + 1), now, i)
                    for i in range(start, min(points, start + 1000))
                ],
            )
        seconds = time.perf_counter() - t0
        client.set_terminated(run_id)
        stored = len(client.get_metric_history(run_id, "loss"))
    return Row(
        f"MlflowClient.log_batch ({label})",
        points,
        seconds,
        stored,
        "1000 points per call; per point",
    )


@contextlib.contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """A real `mlflow server` on loopback (the test suite's launcher)."""
    from tests.servers.mlflow_server import mlflow_server as launch

    with launch(workdir) as uri:
        yield uri


# -- report ------------------------------------------------------------------------------------
def print_table(rows: list[Row], baseline: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Logging one metric point (lower is better)")
    for col in ("method", "calls", "total s", "µs / call", "× coral log", "stored"):
        table.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    notes = []
    for r in rows:
        method = r.method
        if r.note:
            notes.append(r.note)
            method += f" [{len(notes)}]"
        table.add_row(
            method,
            f"{r.calls:,}",
            f"{r.seconds:.2f}",
            f"{r.us_per_call:,.2f}",
            f"{r.us_per_call / baseline:,.1f}",
            f"{r.stored:,}",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    console.print(table)
    for i, note in enumerate(notes, 1):
        console.print(f"  [{i}] {note}", markup=False)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--calls", type=int, default=1_000_000, help="Coral log calls (default 10^6)"
    )
    parser.add_argument("--mlflow-calls", type=int, default=2000, help="MLflow log_metric calls")
    parser.add_argument("--server", action="store_true", help="also time a local `mlflow server`")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args(argv)

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps the file store behind a flag
    workdir = Path(tempfile.mkdtemp(prefix="coral-tracking-bench-"))
    rows: list[Row] = []
    try:
        rows += coral_rows(workdir, args.calls)
        stores: list[tuple[str, str]] = [
            ("file store", (workdir / "mlruns").as_uri()),
            ("sqlite store", f"sqlite:///{workdir / 'mlflow.db'}"),
        ]
        for label, uri in stores:
            rows.append(mlflow_fluent_row(uri, label, args.mlflow_calls))
            rows.append(mlflow_batch_row(uri, label, args.mlflow_calls * 10))
        if args.server:
            with mlflow_server(workdir / "server") as uri:
                rows.append(mlflow_fluent_row(uri, "local server", args.mlflow_calls))
                rows.append(mlflow_batch_row(uri, "local server", args.mlflow_calls * 10))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    baseline = rows[0].us_per_call
    print_table(rows, baseline)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tracking.json").write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "rows": [
                    {
                        **asdict(r),
                        "us_per_call": r.us_per_call,
                        "ratio_to_coral_log": r.us_per_call / baseline,
                    }
                    for r in rows
                ],
            },
            indent=2,
        )
    )
    for r in rows:
        if r.stored != r.calls:
            raise SystemExit(f"{r.method}: stored {r.stored} of {r.calls} points")
    return rows


if __name__ == "__main__":
    main()
