"""Lossless delta codecs (byte planes, XOR / integer difference / prediction, zstd).

The names below are imported on first use: the store's configuration imports the light
`plane_config` at start-up without numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coral.core.lazy_imports import lazy_exports

if TYPE_CHECKING:
    from coral.delta.delta_encoder import Delta, DeltaConfig, DeltaEncoder, DeltaType

__all__ = ["Delta", "DeltaConfig", "DeltaEncoder", "DeltaType"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "delta_encoder"))
