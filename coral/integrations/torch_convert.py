"""Torch <-> numpy conversion, public at this path too: it lives in `coral.core.tensor_convert`
(core needs it, and core imports nothing above itself)."""

from __future__ import annotations

from coral.core.tensor_convert import numpy_to_torch, torch_to_numpy

__all__ = ["numpy_to_torch", "torch_to_numpy"]
