"""Seeded random-hyperplane projections, streamed block by block (the engine of SimHash and LSH).

A vector of any length is cut into blocks of `BLOCK_ELEMENTS` elements. Block `k` is projected
onto `P` hyperplanes whose entries are

    planes[i, perm_k[p]] * sign_k[i]        (i = offset inside the block, p = plane)

where `planes` is one shared `BLOCK_ELEMENTS x P` matrix and `sign_k` (random ±1 per element)
and `perm_k` (a random order of the planes) are drawn for block `k` alone. All three come from
Philox, a counter-based generator, keyed by (seed, number of planes, block or segment index),
so any block's hyperplanes can be rebuilt without touching any other block: a projection
depends only on (seed, P, the values) — never on what was projected before, nor on the
process. The shared matrix is generated lazily in segments of rows and cached, so projecting
a short vector only generates the rows it needs, and projecting a huge tensor never builds a
matrix of the tensor's size: time is linear in the tensor, memory is bounded by one chunk of
`CHUNK_BLOCKS` blocks.

Entries are Irwin–Hall(4) variates (sum of four 16-bit uniforms, centred): close to Gaussian,
computed with integer arithmetic only, so the hyperplanes are bit-identical on every machine
and numpy version (Philox and its key schedule are fixed algorithms). Dot products use float32
BLAS; on one machine they are deterministic, across CPU kinds they may differ in the last bits,
which can flip only a sign that was within rounding of zero.

Values are read as float (NaN and ±inf count as 0; integers and low-precision floats are
converted exactly); a block whose magnitude would overflow or underflow float32 is rescaled by
a power of two first, and the per-block results are recombined with their exponents, so the
sign of every projection is that of the true dot product up to rounding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from coral.core.mapped_pages import release
from coral.core.tensor_convert import torch_to_numpy

BLOCK_ELEMENTS = 1 << 16  # elements per block (one block = one independent slice of hyperplanes)
CHUNK_BLOCKS = 32  # blocks projected together in one matrix product (bounds working memory)
_SEGMENT_ROWS = 4096  # rows of the shared plane matrix generated at a time
_MAX_PLANES = 1 << 16
_ROWS_PER_BATCH_ELEMENTS = 1 << 22  # elements per matrix product when projecting many vectors

_TAG_PLANES = 0x5001
_TAG_BLOCK = 0x5002
_SCALE_HI = 2.0**60
_SCALE_LO = 2.0**-60
_IRWIN_HALL_SCALE = np.float32(1.0 / 37837.0)  # 1 / std of a sum of four uniforms on [0, 65535]


def _philox(tag: int, seed: int, index: int) -> np.random.Philox:
    key = ((tag & 0xFFFF) << 112) | ((int(seed) % (1 << 64)) << 48) | (index & ((1 << 48) - 1))
    return np.random.Philox(key=key)


def _irwin_hall(raw: np.ndarray) -> np.ndarray:
    """One near-Gaussian float32 (mean 0, std ~1) per uint64, by exact integer arithmetic."""
    mask = np.uint64(0xFFFF)
    total = (raw & mask).astype(np.int32)
    for shift in (16, 32, 48):
        total += ((raw >> np.uint64(shift)) & mask).astype(np.int32)
    total -= 2 * 0xFFFF  # centre: sum of four uniforms on [0, 65535] has mean 131070
    return total.astype(np.float32) * _IRWIN_HALL_SCALE


class _PlaneMatrix:
    """The shared BLOCK_ELEMENTS x P hyperplane matrix for (seed, P), filled lazily by segment."""

    def __init__(self, seed: int, num_planes: int) -> None:
        self.seed = seed
        self.num_planes = num_planes
        self._rows = np.empty((BLOCK_ELEMENTS, num_planes), dtype=np.float32)
        self._filled = 0
        self._lock = threading.Lock()

    def rows(self, width: int) -> np.ndarray:
        """The first `width` rows (width <= BLOCK_ELEMENTS), as a read-only view."""
        if width > self._filled:
            with self._lock:
                while self._filled < width:
                    seg = self._filled // _SEGMENT_ROWS
                    raw = _philox(_TAG_PLANES, self.seed, (self.num_planes << 32) | seg).random_raw(
                        _SEGMENT_ROWS * self.num_planes
                    )
                    start = seg * _SEGMENT_ROWS
                    self._rows[start : start + _SEGMENT_ROWS] = _irwin_hall(raw).reshape(
                        _SEGMENT_ROWS, self.num_planes
                    )
                    self._filled = start + _SEGMENT_ROWS
        view = self._rows[:width]
        view.flags.writeable = False
        return view


_planes_lock = threading.Lock()
_planes_cache: OrderedDict[tuple[int, int], _PlaneMatrix] = OrderedDict()
_PLANES_CACHE_SIZE = 8


def _plane_matrix(seed: int, num_planes: int) -> _PlaneMatrix:
    key = (seed, num_planes)
    with _planes_lock:
        m = _planes_cache.get(key)
        if m is None:
            m = _PlaneMatrix(seed, num_planes)
            _planes_cache[key] = m
            while len(_planes_cache) > _PLANES_CACHE_SIZE:
                _planes_cache.popitem(last=False)
        else:
            _planes_cache.move_to_end(key)
        return m


@lru_cache(maxsize=64)
def _block_randomness(seed: int, num_planes: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(signs: float32 ±1 per element of the block, perm: plane order) for one block."""
    words = BLOCK_ELEMENTS // 64
    raw = _philox(_TAG_BLOCK, seed, (num_planes << 32) | block).random_raw(words + num_planes)
    bits = np.unpackbits(raw[:words].view(np.uint8), bitorder="little")
    signs = (1.0 - 2.0 * bits.astype(np.float32)).astype(np.float32)
    perm = np.argsort(raw[words:], kind="stable")
    signs.flags.writeable = False
    perm.flags.writeable = False
    return signs, perm


def as_numpy(value: Any) -> np.ndarray:
    """A numpy view of a WeightTensor, numpy array, torch tensor or array-like."""
    if isinstance(value, np.ndarray):
        return value
    data = getattr(value, "data", None)
    if isinstance(data, np.ndarray) and hasattr(value, "compute_hash"):  # WeightTensor
        return data
    if type(value).__module__.startswith("torch"):
        return torch_to_numpy(value)
    return np.asarray(value)


def flat_real(value: Any) -> np.ndarray:
    """The values of `value` as one flat real array (complex as interleaved re/im; bool as 0/1)."""
    arr = as_numpy(value)
    if arr.dtype.kind == "c":
        arr = np.ascontiguousarray(arr)
        arr = arr.view(np.float32 if arr.dtype.itemsize == 8 else np.float64)
    elif arr.dtype.kind == "b":
        arr = arr.view(np.uint8)
    elif arr.dtype.kind == "O":
        raise TypeError("cannot project an object array")
    return arr.reshape(-1)


def _prepare(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D real rows -> (finite float32 rows, power-of-two exponent each row was scaled by)."""
    dt = rows.dtype
    x: np.ndarray
    if dt == np.float32 or dt == np.float64:
        x = rows
    elif dt.kind in "iu":
        x = rows.astype(np.float64)
    else:  # float16, bfloat16, float8 variants, bool as uint8: exact in float32
        x = rows.astype(np.float32)
    hi = x.max(axis=1)
    lo = x.min(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: no warning, just NaN
        finite = bool(np.isfinite(hi - lo).all())
    if not finite:  # NaN or ±inf somewhere (hi - lo is inf/NaN then)
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        hi = x.max(axis=1)
        lo = x.min(axis=1)
    amax = np.maximum(hi.astype(np.float64), -lo.astype(np.float64))
    exps = np.zeros(len(x), dtype=np.int64)
    need = (amax > _SCALE_HI) | ((amax > 0) & (amax < _SCALE_LO))
    if need.any():
        _, e = np.frexp(amax)
        exps = np.where(need, e, 0).astype(np.int64)
        x = np.ldexp(x.astype(np.float64), -exps[:, None])
    return x.astype(np.float32, copy=False), exps


class RandomProjector:
    """`num_planes` seeded random hyperplanes over vectors of any length (see module docstring).

    `project(x)` returns the float64 dot products of `x` with each hyperplane, up to one
    positive scale factor (only signs and relative magnitudes are meaningful).
    """

    def __init__(self, num_planes: int, seed: int = 42) -> None:
        if not 1 <= int(num_planes) <= _MAX_PLANES:
            raise ValueError(f"num_planes must be in [1, {_MAX_PLANES}], got {num_planes}")
        self.num_planes = int(num_planes)
        self.seed = int(seed)
        self._planes = _plane_matrix(self.seed, self.num_planes)

    def _block_contrib(self, rows: np.ndarray, first_block: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows = consecutive blocks first_block, first_block+1, ... of one vector."""
        x, exps = _prepare(rows)
        width = x.shape[1]
        planes = self._planes.rows(width)
        signed = np.empty_like(x)
        randomness = [
            _block_randomness(self.seed, self.num_planes, first_block + i) for i in range(len(x))
        ]
        for i, (signs, _) in enumerate(randomness):
            np.multiply(x[i], signs[:width], out=signed[i])
        prod = signed @ planes
        out = np.empty(prod.shape, dtype=np.float64)
        for i, (_, perm) in enumerate(randomness):
            out[i] = prod[i, perm]
        return out, exps

    def project(self, value: Any) -> np.ndarray:
        """Projections (float64, shape (num_planes,)) of one vector or tensor of any shape."""
        flat = flat_real(value)
        n = flat.size
        acc = np.zeros(self.num_planes, dtype=np.float64)
        if n == 0:
            return acc
        if n <= BLOCK_ELEMENTS:  # one block: no chunking or exponent bookkeeping
            x, _ = _prepare(flat.reshape(1, n))
            signs, perm = _block_randomness(self.seed, self.num_planes, 0)
            prod = (x * signs[:n]) @ self._planes.rows(n)
            return prod[0, perm].astype(np.float64)
        full = n // BLOCK_ELEMENTS
        scale_exp: int | None = None

        def fold(contrib: np.ndarray, exps: np.ndarray) -> None:
            nonlocal acc, scale_exp
            top = int(exps.max())
            if scale_exp is None:
                scale_exp = top
            elif top > scale_exp:
                acc = np.ldexp(acc, scale_exp - top)
                scale_exp = top
            if (exps == scale_exp).all():
                acc += contrib.sum(axis=0)
            else:
                acc += np.ldexp(contrib, (exps - scale_exp)[:, None]).sum(axis=0)

        for start in range(0, full, CHUNK_BLOCKS):
            count = min(CHUNK_BLOCKS, full - start)
            rows = flat[start * BLOCK_ELEMENTS : (start + count) * BLOCK_ELEMENTS]
            fold(*self._block_contrib(rows.reshape(count, BLOCK_ELEMENTS), start))
            release(rows)  # a memory-mapped tensor's pages go once projected
        tail = n - full * BLOCK_ELEMENTS
        if tail:
            fold(*self._block_contrib(flat[full * BLOCK_ELEMENTS :].reshape(1, tail), full))
        return acc

    def project_rows(self, matrix: np.ndarray) -> np.ndarray:
        """Projections (n, num_planes) of each row of a 2-D array (one matrix product per batch)."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            raise ValueError("project_rows expects a 2-D array (one vector per row)")
        n, width = matrix.shape
        out = np.zeros((n, self.num_planes), dtype=np.float64)
        if n == 0 or width == 0:
            return out
        if width > BLOCK_ELEMENTS or matrix.dtype.kind in "cb":
            for i in range(n):
                out[i] = self.project(matrix[i])
            return out
        signs, perm = _block_randomness(self.seed, self.num_planes, 0)
        planes = self._planes.rows(width)
        step = max(1, _ROWS_PER_BATCH_ELEMENTS // width)
        for start in range(0, n, step):
            x, _ = _prepare(matrix[start : start + step])
            signed = x * signs[:width]
            out[start : start + len(x)] = (signed @ planes)[:, perm]
        return out

    def project_many(self, values: Sequence[Any]) -> np.ndarray:
        """Projections (len(values), num_planes) of several vectors of any sizes.

        Vectors of one size that fit in a block are projected together in one matrix product;
        the result for each equals `project` of it (up to float rounding in the BLAS kernel).
        """
        out = np.zeros((len(values), self.num_planes), dtype=np.float64)
        groups: dict[tuple[int, str], list[int]] = {}
        flats = [flat_real(v) for v in values]
        for i, flat in enumerate(flats):
            if 0 < flat.size <= BLOCK_ELEMENTS and flat.dtype.kind not in "cb":
                groups.setdefault((flat.size, flat.dtype.str), []).append(i)
            else:
                out[i] = self.project(flat)
        for idx in groups.values():
            step = max(1, _ROWS_PER_BATCH_ELEMENTS // flats[idx[0]].size)  # bounded stacking
            for start in range(0, len(idx), step):
                part = idx[start : start + step]
                out[part] = self.project_rows(np.stack([flats[i] for i in part]))
        return out


def pack_bits(bits: np.ndarray) -> int:
    """Bit p of the result = bits[p] (a 1-D boolean array)."""
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def pack_bits_rows(bits: np.ndarray) -> list[int]:
    """`pack_bits` of each row of a 2-D boolean array."""
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def cosine_similarity(a: Any, b: Any, block: int = 1 << 20) -> float:
    """Exact cosine similarity of two same-size tensors, streamed in float64 blocks.

    NaN/inf count as 0. Two all-zero tensors have similarity 1.0; a zero and a non-zero one, 0.0.
    """
    fa, fb = flat_real(a), flat_real(b)
    if fa.size != fb.size:
        raise ValueError(f"cosine of tensors of different sizes ({fa.size} vs {fb.size})")

    def blocks() -> Any:
        for start in range(0, fa.size, block):
            xa = fa[start : start + block].astype(np.float64)
            xb = fb[start : start + block].astype(np.float64)
            yield (
                np.nan_to_num(xa, nan=0.0, posinf=0.0, neginf=0.0),
                np.nan_to_num(xb, nan=0.0, posinf=0.0, neginf=0.0),
            )

    scale = 1.0
    if np.float64 in (fa.dtype, fb.dtype):  # only float64 can overflow/underflow a float64 square
        m = max(
            (
                max(float(np.abs(xa).max(initial=0)), float(np.abs(xb).max(initial=0)))
                for xa, xb in blocks()
            ),
            default=0.0,
        )
        if m > 1e100 or 0 < m < 1e-100:
            scale = float(np.ldexp(1.0, -int(np.frexp(m)[1])))
    dot = na = nb = 0.0
    for xa, xb in blocks():
        if scale != 1.0:
            xa *= scale
            xb *= scale
        dot += float(xa @ xb)
        na += float(xa @ xa)
        nb += float(xb @ xb)
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.clip(dot / (np.sqrt(na) * np.sqrt(nb)), -1.0, 1.0))
