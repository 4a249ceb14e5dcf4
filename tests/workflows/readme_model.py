"""The README fixture's model, which the workflow sessions commit, import and fine-tune."""

from __future__ import annotations

import numpy as np


def readme_model(step: int = 0) -> dict[str, np.ndarray]:
    """encoder.weight (64×64), encoder.bias, head.weight (8×64); `step` > 0 fine-tunes
    head.weight only, by 0.01 per step."""
    rng = np.random.default_rng(0)
    base = {
        "encoder.weight": rng.standard_normal((64, 64)).astype(np.float32),
        "encoder.bias": np.zeros(64, np.float32),
        "head.weight": rng.standard_normal((8, 64)).astype(np.float32),
    }
    base["head.weight"] = base["head.weight"] + np.float32(0.01 * step)
    return base
