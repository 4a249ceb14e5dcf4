"""Names Coral reserves for training state stored beside a model's weights in a checkpoint."""

from __future__ import annotations

OPTIM_PREFIX = "__optim__"
SCHED_PREFIX = "__sched__"
RNG_PREFIX = "__rng__"
EXTRA_PREFIX = "__extra__"
RESERVED_PREFIXES = tuple(f"{p}/" for p in (OPTIM_PREFIX, SCHED_PREFIX, RNG_PREFIX, EXTRA_PREFIX))


def is_training_state(name: str) -> bool:
    """Whether a tensor name belongs to training state (optimizer moments, scheduler, RNG,
    extras) rather than to the model: kept out of diffs and reports unless asked for."""
    return name.startswith(RESERVED_PREFIXES)
