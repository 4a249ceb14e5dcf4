"""Mirror Coral experiments into TensorBoard event files (one run directory per experiment).

    from coral.experiments.bridges import tensorboard as tb_bridge
    run_dir = tb_bridge.mirror(tracker, exp_id, log_dir="runs")   # `tensorboard --logdir runs`
    tb_bridge.attach(tracker, log_dir="runs")                     # live

Metrics become scalars (step, wall time kept); params go to the HParams plugin and, like the
experiment's description, tags, notes, status and commits, to text summaries under `coral/`.
Only the `tensorboard` package is needed: events are written in TensorBoard's record format by
this module itself, so TensorFlow is never imported even where it is installed.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from coral.experiments.bridges import safe_key
from coral.experiments.sinks import ExperimentSink, replay
from coral.experiments.types import Experiment, ExperimentMetric

_FILE_COUNTER = itertools.count()


def _crc32c_impl() -> Callable[[bytes], int]:
    try:
        import google_crc32c
    except ImportError:  # pure Python, ~20x slower
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c

        return cast(Callable[[bytes], int], crc32c)
    return lambda data: int(google_crc32c.value(data))


def _masked_crc32c_impl() -> Callable[[bytes], int]:
    crc = _crc32c_impl()

    def masked(data: bytes) -> int:
        value = crc(data)
        return (((value >> 15) | (value << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    return masked


class EventFile:
    """An `events.out.tfevents.*` file: length-prefixed, CRC32C-framed `Event` protobufs."""

    def __init__(self, run_dir: Path) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        name = (
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_FILE_COUNTER)}"
        )
        self.path = Path(run_dir) / name
        self._crc = _masked_crc32c_impl()
        self._lock = threading.Lock()
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self.add_event(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def add_event(self, event: Any) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        record = (
            header
            + struct.pack("<I", self._crc(header))
            + data
            + struct.pack("<I", self._crc(data))
        )
        with self._lock:
            self._fh.write(record)

    def flush(self) -> None:
        with self._lock:
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()


def run_dir_name(experiment: Experiment) -> str:
    """`<name>-<experiment id>` with path-safe characters."""
    name = safe_key(experiment.name).replace("/", "_").replace(" ", "_")
    return f"{name}-{experiment.experiment_id}"


def _hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)


class TensorBoardSink(ExperimentSink):
    """Writes each experiment to `log_dir/<name>-<id>/events.out.tfevents.*`.

    With `replace` (the default) event files already in an experiment's run directory are
    removed first, so mirroring twice does not duplicate points."""

    def __init__(self, log_dir: str | Path, replace: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.replace = replace
        self.run_dirs: dict[str, Path] = {}
        self._writers: dict[str, EventFile] = {}
        self._hparams_sent: set[str] = set()

    def _writer(self, experiment_id: str) -> EventFile | None:
        return self._writers.get(experiment_id)

    def _summary_event(
        self, experiment_id: str, values: list[Any], step: int = 0, wall_time: float | None = None
    ) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        writer = self._writer(experiment_id)
        if writer is None:
            return
        writer.add_event(
            Event(wall_time=wall_time or time.time(), step=step, summary=Summary(value=values))
        )

    @staticmethod
    def _text(tag: str, text: str) -> Any:
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboard.compat.proto.types_pb2 import DT_STRING

        return Summary.Value(
            tag=tag,
            metadata=SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text")),
            tensor=TensorProto(
                dtype=DT_STRING,
                string_val=[text.encode("utf-8")],
                tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]),
            ),
        )

    # -- events -----------------------------------------------------------------------------------
    def on_start(self, experiment: Experiment) -> None:
        run_dir = self.log_dir / run_dir_name(experiment)
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.replace:
            for old in run_dir.glob("events.out.tfevents.*"):
                old.unlink()
        self.run_dirs[experiment.experiment_id] = run_dir
        self._writers[experiment.experiment_id] = EventFile(run_dir)
        start = experiment.started_at or experiment.created_at
        info = [
            f"**experiment** `{experiment.experiment_id}` — {experiment.name}",
            f"**branch** {experiment.branch or '-'}",
        ]
        if experiment.description:
            info.append(f"**description** {experiment.description}")
        if experiment.parent_experiment:
            info.append(f"**resumes** `{experiment.parent_experiment}`")
        self._summary_event(
            experiment.experiment_id,
            [self._text("coral/experiment", "\n\n".join(info))],
            wall_time=start.timestamp(),
        )

    def on_params(self, experiment_id: str, params: dict[str, Any]) -> None:
        from tensorboard.plugins.hparams import summary_v2

        if self._writer(experiment_id) is None or not params:
            return
        rows = "\n".join(f"| {k} | {json.dumps(v, default=str)} |" for k, v in params.items())
        self._summary_event(
            experiment_id, [self._text("coral/params", f"| param | value |\n|---|---|\n{rows}")]
        )
        if experiment_id not in self._hparams_sent:  # the HParams plugin reads one session start
            self._hparams_sent.add(experiment_id)
            hparams = {safe_key(k): _hparam_value(v) for k, v in params.items()}
            pb = summary_v2.hparams_pb(hparams, trial_id=experiment_id)
            self._summary_event(experiment_id, list(pb.value))

    def on_tags(self, experiment_id: str, tags: list[str]) -> None:
        if tags:
            self._summary_event(experiment_id, [self._text("coral/tags", ", ".join(tags))])

    def on_notes(self, experiment_id: str, notes: str) -> None:
        self._summary_event(experiment_id, [self._text("coral/notes", notes)])

    def on_metrics(self, experiment_id: str, metrics: Sequence[ExperimentMetric]) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        writer = self._writer(experiment_id)
        if writer is None:
            return
        for m in metrics:
            writer.add_event(
                Event(
                    wall_time=m.timestamp.timestamp(),
                    step=int(m.step) if m.step is not None else 0,
                    summary=Summary(
                        value=[Summary.Value(tag=safe_key(m.name), simple_value=m.value)]
                    ),
                )
            )
        writer.flush()

    def on_end(self, experiment: Experiment) -> None:
        eid = experiment.experiment_id
        lines = [
            f"**status** {experiment.status.value}",
            f"**commit** `{experiment.commit_hash or '-'}`",
        ]
        if experiment.commits:
            lines.append("**commits** " + ", ".join(f"`{c[:10]}`" for c in experiment.commits))
        if experiment.error_message:
            lines.append(f"**error** {experiment.error_message}")
        wall = experiment.ended_at.timestamp() if experiment.ended_at else None
        self._summary_event(eid, [self._text("coral/result", "\n\n".join(lines))], wall_time=wall)
        writer = self._writers.pop(eid, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def attach(tracker: Any, log_dir: str | Path, **kwargs: Any) -> TensorBoardSink:
    """Mirror `tracker`'s experiments into TensorBoard live, from now on."""
    sink = TensorBoardSink(log_dir, **kwargs)
    tracker.add_sink(sink)
    return sink


def mirror(tracker: Any, experiment_id: str, log_dir: str | Path) -> Path:
    """Write a stored experiment as TensorBoard events; returns its run directory."""
    sink = TensorBoardSink(log_dir)
    experiment = replay(tracker, experiment_id, sink)
    return sink.run_dirs[experiment.experiment_id]


__all__ = ["TensorBoardSink", "attach", "mirror", "run_dir_name"]
