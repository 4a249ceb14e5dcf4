"""How byte planes are compressed: the settings, importable without numpy (the store's
configuration reads them at start-up)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlaneCodecConfig:
    """How planes are compressed.

    level: a zstd level, or LITERAL — zstd tuned to code mostly literals (tiny match tables,
    7-byte minimum match), which is near order-0 Huffman coding: on weight planes it compresses
    as well as or better than level 1 at two to three times the speed.
    exhaustive: compress every plane fully (no sampling) with LITERAL and `level`, keep the smaller.
    """

    level: int = 0
    exhaustive: bool = False


LITERAL = 0
