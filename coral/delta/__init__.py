"""Lossless delta codecs (byte planes, XOR / integer difference / prediction, zstd)."""

from coral.delta.delta_encoder import Delta, DeltaConfig, DeltaEncoder, DeltaType

__all__ = ["Delta", "DeltaConfig", "DeltaEncoder", "DeltaType"]
