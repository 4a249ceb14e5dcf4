"""Mirror Coral experiments into Weights & Biases runs — offline by default (no network).

    from coral.experiments.bridges import wandb as wandb_bridge
    run_dir = wandb_bridge.mirror(tracker, exp_id, dir="wandb-out")   # later: `wandb sync RUN_DIR`
    wandb_bridge.attach(tracker, dir="wandb-out")                     # live

The W&B run id is the Coral experiment id. W&B wants one increasing step for a whole run while
Coral steps are per metric, so each metric `m` is plotted against its own step metric
`coral_step/m` (`define_metric`); points logged at one step together share a history row.
Params go to the run config, tags and notes to the run, status and commits to the summary.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from coral.experiments.bridges import safe_key
from coral.experiments.sinks import ExperimentSink, replay
from coral.experiments.types import Experiment, ExperimentMetric, ExperimentStatus

STEP_PREFIX = "coral_step/"
FINISH_TIMEOUT_S = 60.0


def transaction_log_records(path: str | Path) -> Iterator[bytes]:
    """The record payloads of a W&B transaction log (`run-<id>.wandb`), in order.

    The file is a LevelDB-style log: a 7-byte header (":W&B", 0xBEE1, version), then 32 KiB
    blocks of chunks (crc32 4 bytes, length 2, type 1: full/first/middle/last, data). A torn
    chunk at the end (a log still being written) ends the iteration.
    """
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        return
    pos, pending, block = 7, b"", 32 * 1024
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += left
            continue
        if pos + 7 + length > len(data):
            return
        body = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield body
        elif kind == 2:
            pending = body
        elif kind == 3:
            pending += body
        elif kind == 4:
            yield pending + body
            pending = b""


def offline_run_complete(run_dir: str | Path) -> bool:
    """True once an offline run's transaction log holds its exit record (the log is final)."""
    from wandb.proto import wandb_internal_pb2

    for path in Path(run_dir).glob("run-*.wandb"):
        for payload in transaction_log_records(path):
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            try:
                record.ParseFromString(payload)
            except Exception:
                return False
            if record.WhichOneof("record_type") == "exit":
                return True
    return False


def _wait_complete(run_dir: Path, timeout: float) -> None:
    """`run.finish()` returns before W&B's service has written the end of an offline run's log;
    wait for it, so the run directory is complete when a mirror returns."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if offline_run_complete(run_dir):
            break
        time.sleep(0.05)
    # Records can still follow the exit record (summary, final stats) on a busy machine: wait
    # until the log has stopped growing for a moment.
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = sum(p.stat().st_size for p in run_dir.glob("run-*.wandb"))
        if size != last:
            last, stable_since = size, time.monotonic()
        elif time.monotonic() - stable_since >= 0.3:
            return
        time.sleep(0.05)


class WandbSink(ExperimentSink):
    """Writes each experiment as a W&B run under `dir/wandb/` (mode "offline" unless told)."""

    def __init__(
        self,
        dir: str | Path,
        project: str = "coral",
        entity: str | None = None,
        mode: str = "offline",
        finish_timeout: float = FINISH_TIMEOUT_S,
    ) -> None:
        self.dir = Path(dir)
        self.finish_timeout = finish_timeout
        self.project = project
        self.entity = entity
        self.mode = mode
        self.runs: dict[str, Any] = {}
        self.run_dirs: dict[str, Path] = {}
        self._defined: dict[str, set[str]] = {}

    def on_start(self, experiment: Experiment) -> None:
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        mode = cast(Any, self.mode)
        settings = wandb.Settings(
            mode=mode,
            silent=True,
            console="off",
            disable_git=True,
            save_code=False,
            x_disable_stats=True,
            x_disable_meta=True,
        )
        run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=experiment.name,
            id=experiment.experiment_id,
            dir=str(self.dir),
            config=dict(experiment.params),
            tags=[t[:64] for t in experiment.tags],
            notes=experiment.description,
            group=experiment.parent_experiment or None,
            reinit="create_new",
            resume="allow",
            mode=mode,
            settings=settings,
        )
        run.summary["coral/experiment_id"] = experiment.experiment_id
        run.summary["coral/branch"] = experiment.branch or ""
        self.runs[experiment.experiment_id] = run
        self.run_dirs[experiment.experiment_id] = Path(run.dir).parent
        self._defined[experiment.experiment_id] = set()

    def on_params(self, experiment_id: str, params: dict[str, Any]) -> None:
        run = self.runs.get(experiment_id)
        if run is not None:
            run.config.update(dict(params), allow_val_change=True)

    def on_tags(self, experiment_id: str, tags: list[str]) -> None:
        run = self.runs.get(experiment_id)
        if run is not None:
            run.tags = tuple(dict.fromkeys([*run.tags, *(t[:64] for t in tags)]))

    def on_notes(self, experiment_id: str, notes: str) -> None:
        run = self.runs.get(experiment_id)
        if run is not None:
            run.notes = notes

    def on_metrics(self, experiment_id: str, metrics: Sequence[ExperimentMetric]) -> None:
        run = self.runs.get(experiment_id)
        if run is None:
            return
        defined = self._defined[experiment_id]
        row: dict[str, Any] = {}
        row_step: int | None = None
        for m in metrics:
            key = safe_key(m.name)
            if key not in defined:
                run.define_metric(f"{STEP_PREFIX}{key}", hidden=True)
                run.define_metric(key, step_metric=f"{STEP_PREFIX}{key}")
                defined.add(key)
            step = int(m.step) if m.step is not None else 0
            if row and (step != row_step or key in row):
                run.log(row)
                row = {}
            row[key] = m.value
            row[f"{STEP_PREFIX}{key}"] = step
            row_step = step
        if row:
            run.log(row)

    def on_end(self, experiment: Experiment) -> None:
        run = self.runs.pop(experiment.experiment_id, None)
        if run is None:
            return
        run.config.update(dict(experiment.params), allow_val_change=True)
        run.summary["coral/status"] = experiment.status.value
        run.summary["coral/commit_hash"] = experiment.commit_hash or ""
        run.summary["coral/commits"] = list(experiment.commits)
        if experiment.notes:
            run.notes = experiment.notes
        if experiment.error_message:
            run.summary["coral/error"] = experiment.error_message
        run.finish(exit_code=0 if experiment.status is ExperimentStatus.COMPLETED else 1)
        self._settle(experiment.experiment_id)

    def _settle(self, experiment_id: str) -> None:
        if self.mode == "offline" and experiment_id in self.run_dirs:
            _wait_complete(self.run_dirs[experiment_id], self.finish_timeout)

    def close(self) -> None:
        for experiment_id, run in list(self.runs.items()):
            run.finish()
            self._settle(experiment_id)
        self.runs.clear()


def attach(tracker: Any, dir: str | Path, **kwargs: Any) -> WandbSink:
    """Mirror `tracker`'s experiments into W&B live, from now on."""
    sink = WandbSink(dir, **kwargs)
    tracker.add_sink(sink)
    return sink


def mirror(
    tracker: Any, experiment_id: str, dir: str | Path, project: str = "coral", mode: str = "offline"
) -> Path:
    """Write a stored experiment as a W&B run; returns the run directory
    (`dir/wandb/offline-run-<time>-<id>` in offline mode)."""
    sink = WandbSink(dir, project=project, mode=mode)
    experiment = replay(tracker, experiment_id, sink)
    return sink.run_dirs[experiment.experiment_id]


__all__ = ["WandbSink", "attach", "mirror", "offline_run_complete", "transaction_log_records"]
