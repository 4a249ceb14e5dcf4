"""`CheckpointConfig`: when a run checkpoints, which checkpoints it keeps, and how it commits."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from coral.errors import CoralError


class CheckpointConfigError(CoralError):
    default_hint = "see CheckpointConfig's docstring for the accepted values"


@dataclass
class CheckpointConfig:
    """Checkpoint rules for a `CheckpointManager`.

    When to save (any rule that fires saves):
      every_n_steps   save when `step % n == 0`
      every_n_epochs  save at the end of every n-th epoch (0-based epoch e: when (e+1) % n == 0)
      on_improvement  a metric name: save whenever it improves on the best value seen so far
                      (by `mode` "min" or "max", by more than `min_delta`)
    What to keep (a checkpoint is kept when any rule keeps it; no rule = keep all; the newest
    checkpoint is always kept):
      keep_last_n     the n most recent
      keep_best_n     the n best by `best_metric` (default: `on_improvement`) and `mode`
      keep_every_k    those whose step is a multiple of k (milestones)
      auto_gc         run `gc` right after retention prunes checkpoints, so their weights are
                      freed at once (default off: a pruned checkpoint stays loadable by its hash
                      until the next `coral gc`; each gc walks the whole history)
    How to commit:
      async_commit    commit on a background thread; the training step only waits for the copy
                      of the tensors (and for room in a queue of `max_queue` pending snapshots)
      background_nice lower the writer thread's CPU priority by this much (Linux), so hashing and
                      compression yield to training on a busy CPU; 0 keeps it
      save_optimizer  include optimizer and scheduler state
      save_rng        include the RNG states (python, numpy, torch, cuda)
      message         commit message template; fields {step}, {epoch}, {reason} and any metric
                      whose name is an identifier
    """

    every_n_steps: int | None = None
    every_n_epochs: int | None = None
    on_improvement: str | None = None
    mode: str = "min"
    min_delta: float = 0.0
    keep_last_n: int | None = None
    keep_best_n: int | None = None
    best_metric: str | None = None
    keep_every_k: int | None = None
    auto_gc: bool = False
    async_commit: bool = True
    max_queue: int = 2
    background_nice: int = 10
    save_optimizer: bool = True
    save_rng: bool = True
    message: str = "checkpoint step {step}"
    author: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "every_n_steps",
            "every_n_epochs",
            "keep_last_n",
            "keep_best_n",
            "keep_every_k",
        ):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise CheckpointConfigError(
                    f"{name} must be a positive integer or None, not {value!r}"
                )
        if not isinstance(self.auto_gc, bool):
            raise CheckpointConfigError(f"auto_gc must be True or False, not {self.auto_gc!r}")
        if self.mode not in ("min", "max"):
            raise CheckpointConfigError(f"mode must be 'min' or 'max', not {self.mode!r}")
        if not isinstance(self.max_queue, int) or self.max_queue < 1:
            raise CheckpointConfigError(
                f"max_queue must be a positive integer, not {self.max_queue!r}"
            )
        if self.min_delta < 0:
            raise CheckpointConfigError(f"min_delta must be >= 0, not {self.min_delta!r}")
        if self.keep_best_n is not None and self.metric_for_best is None:
            raise CheckpointConfigError(
                "keep_best_n needs a metric",
                hint="set best_metric (or on_improvement) to a metric name",
            )

    @property
    def metric_for_best(self) -> str | None:
        """The metric `keep_best_n` and `best()` rank by."""
        return self.best_metric or self.on_improvement

    @property
    def has_retention(self) -> bool:
        return any(v is not None for v in (self.keep_last_n, self.keep_best_n, self.keep_every_k))

    def is_better(self, value: float, best: float | None) -> bool:
        """Whether `value` improves on `best` by more than `min_delta` (in `mode`'s direction)."""
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CheckpointConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise CheckpointConfigError(
                f"unknown checkpoint settings: {', '.join(sorted(unknown))}"
            )
        return cls(**values)
