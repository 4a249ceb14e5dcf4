"""Group a model's tensors by its repeating block structure: layer index × module.

`encoder.layer.3.attention.self.query.weight` is block `encoder.layer.3`, module
`attention.self.query.weight`. A prefix counts as a block family when at least two indices
occur under it; every other tensor (embeddings, a pooler, a head) is one of the `others`.
Pictures draw one row per block instead of one row per tensor, so a 100–1 000 tensor model
stays legible; identical tensors are filtered out unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coral.version_control.diff import natural_key

Layer = Mapping[str, Any]  # one entry of a compare_models `layers` list


@dataclass(frozen=True)
class BlockName:
    family: str  # "encoder.layer"
    index: int  # 3
    module: str  # "attention.self.query.weight"

    @property
    def block(self) -> str:
        return f"{self.family}.{self.index}" if self.family else str(self.index)


@dataclass
class BlockGrid:
    """Rows are blocks, columns are modules; `cells[(row, column)]` is that tensor's layer."""

    rows: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    cells: dict[tuple[int, int], Layer] = field(default_factory=dict)
    others: list[Layer] = field(default_factory=list)  # tensors outside any block family
    hidden_identical: int = 0  # identical tensors not drawn at all

    @property
    def drawn(self) -> int:
        """How many tensors the grid and the others list draw."""
        return len(self.cells) + len(self.others)


def split_block(name: str) -> BlockName | None:
    """The block of a name: the first all-digit component and what comes before and after."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return BlockName(".".join(parts[:i]), int(part), ".".join(parts[i + 1 :]) or "(self)")
    return None


def block_families(names: Iterable[str]) -> set[str]:
    """Prefixes under which at least two block indices occur."""
    indices: dict[str, set[int]] = {}
    for name in names:
        b = split_block(name)
        if b is not None:
            indices.setdefault(b.family, set()).add(b.index)
    return {f for f, idx in indices.items() if len(idx) >= 2}


def block_grid(layers: Sequence[Layer], *, show_identical: bool = False) -> BlockGrid:
    """Lay `layers` out by block; identical tensors are left out unless `show_identical`,
    except inside a drawn row and column, where they are the context of what changed."""
    families = block_families(ly["name"] for ly in layers)
    placed: list[tuple[BlockName, Layer]] = []
    others: list[Layer] = []
    for ly in layers:
        b = split_block(ly["name"])
        if b is not None and b.family in families:
            placed.append((b, ly))
        else:
            others.append(ly)

    def shown(ly: Layer) -> bool:
        return show_identical or ly["category"] != "identical"

    rows: list[str] = []
    columns: list[str] = []
    keys: dict[str, tuple[int, int]] = {}
    order = {f: i for i, f in enumerate(dict.fromkeys(b.family for b, _ in placed))}
    for b, ly in sorted(placed, key=lambda p: (order[p[0].family], p[0].index)):
        if shown(ly) and b.block not in keys:
            keys[b.block] = (order[b.family], b.index)
        if shown(ly) and b.module not in columns:
            columns.append(b.module)
    rows = sorted(keys, key=lambda r: keys[r])
    columns.sort(key=natural_key)
    row_of = {r: i for i, r in enumerate(rows)}
    col_of = {c: j for j, c in enumerate(columns)}
    grid = BlockGrid(rows=rows, columns=columns)
    for b, ly in placed:
        i, j = row_of.get(b.block), col_of.get(b.module)
        if i is not None and j is not None:
            grid.cells[(i, j)] = ly
    grid.others = [ly for ly in others if shown(ly)]
    grid.hidden_identical = len(layers) - grid.drawn
    return grid
