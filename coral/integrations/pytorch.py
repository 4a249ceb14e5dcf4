"""PyTorch models, optimizers and schedulers in and out of Coral, bit-exact.

>>> integ = PyTorchIntegration(model, optimizer, scheduler)
>>> commit = integ.save(repo, "step 100", TrainingState.capture(step=100))
>>> state = integ.load(repo)          # model, optimizer, scheduler and RNG back; a TrainingState

The code lives in `coral.training.torch_state`, because `CheckpointManager` (training) uses it
for a `torch.nn.Module` and training imports nothing above itself; this module is its public
path, and the Lightning and Hugging Face callbacks build on it.
"""

from __future__ import annotations

from coral.core.training_names import (
    EXTRA_PREFIX,
    OPTIM_PREFIX,
    RESERVED_PREFIXES,
    RNG_PREFIX,
    SCHED_PREFIX,
)
from coral.training.torch_state import (
    CheckpointParts,
    LoadReport,
    PyTorchIntegration,
    build_snapshot,
    is_reserved_name,
    load_into_model,
    model_to_weights,
    model_weights,
    state_dict_with_aliases,
    unpack_checkpoint,
)

__all__ = [
    "EXTRA_PREFIX",
    "OPTIM_PREFIX",
    "RESERVED_PREFIXES",
    "RNG_PREFIX",
    "SCHED_PREFIX",
    "CheckpointParts",
    "LoadReport",
    "PyTorchIntegration",
    "build_snapshot",
    "is_reserved_name",
    "load_into_model",
    "model_to_weights",
    "model_weights",
    "state_dict_with_aliases",
    "unpack_checkpoint",
]
