"""`TrainingState`: where a run stands (step, epoch, metrics) and its random number generators.

RNG states are captured for Python's `random`, NumPy's global generator, torch's CPU generator
and every initialised CUDA device, so a resumed run draws the same numbers as one that never
stopped. The binary parts are numpy arrays (stored as tensors), the rest plain JSON.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRAINING_KEY = "training"  # commit metadata key holding a checkpoint's training record
FORMAT = 1


def _torch() -> Any | None:
    try:
        import torch
    except ImportError:  # torch is optional
        return None
    return torch


def capture_rng_state() -> dict[str, Any]:
    """The current state of every global random number generator Coral knows."""
    version, internal, gauss = random.getstate()
    np_state: Any = np.random.get_state()
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": np.asarray(internal, dtype=np.uint32),
            "gauss": gauss,
        },
        "numpy": {
            "kind": str(np_state[0]),
            "keys": np.asarray(np_state[1], dtype=np.uint32).copy(),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }
    torch = _torch()
    if torch is not None:
        state["torch"] = torch.get_rng_state().numpy().copy()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = [s.numpy().copy() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what `capture_rng_state` captured (parts that are absent are left alone)."""
    py = state.get("python")
    if py is not None:
        random.setstate(
            (int(py["version"]), tuple(int(x) for x in np.asarray(py["state"])), py["gauss"])
        )
    nps = state.get("numpy")
    if nps is not None:
        np.random.set_state(
            (
                nps["kind"],
                np.asarray(nps["keys"], dtype=np.uint32),
                int(nps["pos"]),
                int(nps["has_gauss"]),
                float(nps["cached_gaussian"]),
            )
        )
    torch = _torch()
    if torch is None:
        return
    if state.get("torch") is not None:
        torch.set_rng_state(torch.from_numpy(np.array(state["torch"], dtype=np.uint8)))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        torch.cuda.set_rng_state_all(
            [torch.from_numpy(np.array(s, dtype=np.uint8)) for s in cuda[:n]]
        )


@dataclass
class TrainingState:
    """A checkpoint's place in a run: step, epoch, metrics, RNG states and free-form extras.

    `commit` is the commit it was read from (None for a state not stored yet).
    """

    step: int = 0
    epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    rng: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    commit: str | None = None

    @classmethod
    def capture(
        cls,
        step: int = 0,
        epoch: int | None = None,
        metrics: dict[str, float] | None = None,
        extra: dict[str, Any] | None = None,
        rng: bool = True,
    ) -> TrainingState:
        """A state for the current moment, RNG states included unless `rng=False`."""
        return cls(
            step=int(step),
            epoch=None if epoch is None else int(epoch),
            metrics=_plain_metrics(metrics),
            rng=capture_rng_state() if rng else None,
            extra=dict(extra or {}),
        )

    def restore_rng(self) -> bool:
        """Restore the captured RNG states; False when none were captured."""
        if not self.rng:
            return False
        restore_rng_state(self.rng)
        return True


def _plain_metrics(metrics: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (metrics or {}).items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v)
    return out
