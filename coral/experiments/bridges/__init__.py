"""Mirrors of Coral experiments into other trackers.

Each bridge module offers a sink class (live mirroring: `tracker.add_sink(...)` or the module's
`attach(tracker, ...)`) and `mirror(tracker, experiment_id, ...)` to copy a stored experiment
after the fact:

- `coral.experiments.bridges.mlflow`      — MLflow tracking (server or local store)
- `coral.experiments.bridges.tensorboard` — TensorBoard event files
- `coral.experiments.bridges.wandb`       — Weights & Biases, offline by default (no network)

The optional packages are imported only when a bridge is used.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^\w.\-/ :]")


def safe_key(name: str) -> str:
    """A metric/param name every tracker accepts: letters, digits, _ - . / : and spaces."""
    cleaned = _UNSAFE.sub("_", str(name)).strip("/") or "_"
    return cleaned.replace("//", "/")
