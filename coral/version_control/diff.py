"""The diff engine: comparing two snapshots tensor by tensor.

Every view of a diff (`coral diff`, `--ascii`, the PNG and HTML reports, the chapter 8.4
`compare_models` dictionary) is built from what `compare_tensors` returns, so they agree on
every count. A tensor's category is decided by bit equality:

- identical      same shape, dtype and bits (equal content ids are enough: nothing is read)
- changed        same shape, different bits (or a different dtype)
- shape_changed  a different shape (no element-wise metrics)
- added / removed  on one side only

Changed tensors get float64 metrics (`ChangeMetrics`), computed block by block so two large
tensors never need float64 copies of themselves; one tensor pair is read at a time.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coral.core.lazy_imports import lazy_module
from coral.version_control.objects import Tree, TreeEntry

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

IDENTICAL = "identical"
CHANGED = "changed"
SHAPE_CHANGED = "shape_changed"
ADDED = "added"
REMOVED = "removed"
CATEGORIES: tuple[str, ...] = (IDENTICAL, CHANGED, SHAPE_CHANGED, ADDED, REMOVED)

PHASE = "comparing tensors"  # what `progress` callbacks are told
Progress = Callable[[str, int, int | None], None]  # (phase, done, total), as gc and fsck report
BLOCK_ELEMENTS = 1 << 22  # elements converted to float64 at a time (32 MiB per operand)


# -- inputs and results -----------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSide:
    """One tensor as the engine sees it: shape and dtype without reading, a loader for the
    values, and its content id when known (equal ids mean equal bits)."""

    shape: tuple[int, ...]
    dtype: str
    load: Callable[[], np.ndarray]
    content_id: str | None = None


@dataclass(frozen=True)
class ChangeMetrics:
    """Element-wise metrics of a changed tensor (float64; non-finite pairs left out of sums).

    l2 = ‖b − a‖₂, relative = l2 / ‖a‖₂ (inf when a is all zeros and b is not),
    one_minus_cosine = 1 − cos(a, b), computed from ‖b − a‖ so that tiny changes stay visible.
    """

    elements: int
    changed_elements: int  # elements whose bits (or, across dtypes, values) differ
    l2: float
    relative: float
    max_abs: float
    mean_abs: float
    rmse: float
    norm_a: float
    norm_b: float
    cosine: float
    one_minus_cosine: float
    nonfinite_a: int = 0
    nonfinite_b: int = 0
    nonfinite_mismatched: int = 0  # positions where the non-finite values do not agree

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class TensorComparison:
    """The engine's verdict on one name."""

    name: str
    category: str
    old_shape: tuple[int, ...] | None = None
    new_shape: tuple[int, ...] | None = None
    old_dtype: str | None = None
    new_dtype: str | None = None
    old_id: str | None = None
    new_id: str | None = None
    metrics: ChangeMetrics | None = None
    error: str | None = None  # why a changed tensor has no metrics (values not numeric)
    nonfinite: int = 0  # NaN/inf values of an identical tensor that was read

    @property
    def dtype_changed(self) -> bool:
        return (
            self.old_dtype is not None
            and self.new_dtype is not None
            and (self.old_dtype != self.new_dtype)
        )

    @property
    def elements(self) -> int:
        """Elements of the larger side (what a diff counts as this tensor's parameters)."""
        return max(_size(self.old_shape), _size(self.new_shape))


@dataclass
class TensorChange:
    """How one tensor changed. Norms are None when the shape changed (no element-wise diff).

    l2 = ‖b − a‖₂, relative = ‖b − a‖₂ / ‖a‖₂ (inf when a is all zeros and b is not),
    max_abs = max |b − a|; `metrics` holds every metric the engine computed.
    """

    name: str
    old_tensor: str
    new_tensor: str
    old_shape: tuple[int, ...]
    new_shape: tuple[int, ...]
    old_dtype: str
    new_dtype: str
    l2: float | None = None
    relative: float | None = None
    max_abs: float | None = None
    changed_elements: int | None = None
    metrics: ChangeMetrics | None = field(default=None, repr=False)

    @property
    def shape_changed(self) -> bool:
        return self.old_shape != self.new_shape

    @property
    def dtype_changed(self) -> bool:
        return self.old_dtype != self.new_dtype

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "old_tensor": self.old_tensor,
            "new_tensor": self.new_tensor,
            "old_shape": list(self.old_shape),
            "new_shape": list(self.new_shape),
            "old_dtype": self.old_dtype,
            "new_dtype": self.new_dtype,
            "shape_changed": self.shape_changed,
            "dtype_changed": self.dtype_changed,
            "l2": self.l2,
            "relative": self.relative,
            "max_abs": self.max_abs,
            "changed_elements": self.changed_elements,
            "one_minus_cosine": self.metrics.one_minus_cosine if self.metrics else None,
        }


@dataclass
class DiffResult:
    """Per-tensor differences between two snapshots (`from_ref` -> `to_ref`).

    `changed` holds every tensor whose content differs, shape changes included; `counts()`
    gives the five exclusive categories; `tensors` is the engine's verdict on every name."""

    from_ref: str
    to_ref: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    identical: list[str] = field(default_factory=list)
    changed: dict[str, TensorChange] = field(default_factory=dict)
    metadata_changed: list[str] = field(default_factory=list)
    tensors: list[TensorComparison] = field(default_factory=list, repr=False)

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.metadata_changed)

    @property
    def shape_changed(self) -> list[str]:
        return [n for n, c in self.changed.items() if c.shape_changed]

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "identical": len(self.identical),
            "changed": len(self.changed),
            "metadata_changed": len(self.metadata_changed),
        }

    def counts(self) -> dict[str, int]:
        """Tensors per category; the categories are exclusive and cover every name."""
        return category_counts(self.tensors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_ref,
            "to": self.to_ref,
            "added": list(self.added),
            "removed": list(self.removed),
            "identical": list(self.identical),
            "changed": {n: c.to_dict() for n, c in self.changed.items()},
            "metadata_changed": list(self.metadata_changed),
            "summary": self.summary(),
            "categories": self.counts(),
        }


def category_counts(tensors: list[TensorComparison]) -> dict[str, int]:
    counts = dict.fromkeys(CATEGORIES, 0)
    for t in tensors:
        counts[t.category] += 1
    return counts


# -- the engine -------------------------------------------------------------------------------
def natural_key(name: str) -> list[tuple[int, int, str]]:
    """Sort key putting `layer.2` before `layer.10`."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


def compare_tensors(
    old: Mapping[str, TensorSide],
    new: Mapping[str, TensorSide],
    *,
    norms: bool = True,
    progress: Progress | None = None,
) -> list[TensorComparison]:
    """Compare two name -> tensor mappings; one verdict per name, in natural name order.

    With `norms=False`, tensors whose content ids are known are not read (changed tensors
    then have no metrics). `progress("comparing tensors", done, total)` is called as each
    name is done."""
    out: list[TensorComparison] = []
    names = sorted(set(old) | set(new), key=natural_key)
    for done, name in enumerate(names, 1):
        a, b = old.get(name), new.get(name)
        if a is None and b is not None:
            out.append(
                TensorComparison(
                    name, ADDED, new_shape=b.shape, new_dtype=b.dtype, new_id=b.content_id
                )
            )
        elif b is None and a is not None:
            out.append(
                TensorComparison(
                    name, REMOVED, old_shape=a.shape, old_dtype=a.dtype, old_id=a.content_id
                )
            )
        elif a is not None and b is not None:
            out.append(_compare_pair(name, a, b, norms))
        if progress is not None:
            progress(PHASE, done, len(names))
    return out


def _compare_pair(name: str, a: TensorSide, b: TensorSide, norms: bool) -> TensorComparison:
    def verdict(
        category: str, metrics: ChangeMetrics | None = None, error: str | None = None, nf: int = 0
    ) -> TensorComparison:
        return TensorComparison(
            name,
            category,
            a.shape,
            b.shape,
            a.dtype,
            b.dtype,
            a.content_id,
            b.content_id,
            metrics,
            error,
            nf,
        )

    if a.shape != b.shape:
        return verdict(SHAPE_CHANGED)
    known = a.content_id is not None and b.content_id is not None
    if known and a.dtype == b.dtype and a.content_id == b.content_id:
        return verdict(IDENTICAL)
    if known and not norms:
        return verdict(CHANGED)
    xa, xb = a.load(), b.load()
    try:
        metrics = change_metrics(xa, xb)
        if metrics is None:
            return verdict(IDENTICAL, nf=nonfinite_count(xa))
        return verdict(CHANGED, metrics)
    except (TypeError, ValueError) as exc:  # a dtype numpy cannot turn into numbers
        same = a.dtype == b.dtype and _bits_equal(xa, xb)
        return verdict(IDENTICAL if same else CHANGED, error=f"{type(exc).__name__}: {exc}")
    finally:
        del xa, xb


def diff_trees(
    old: Tree,
    new: Tree,
    load: Callable[[TreeEntry], np.ndarray],
    from_ref: str,
    to_ref: str,
    *,
    norms: bool = True,
    progress: Progress | None = None,
) -> DiffResult:
    """Compare two trees; `load(entry)` reads a tensor's values (for the metrics of changes)."""

    def side(entry: TreeEntry) -> TensorSide:
        return TensorSide(tuple(entry.shape), entry.dtype, lambda: load(entry), entry.tensor_id)

    def sides(tree: Tree) -> dict[str, TensorSide]:
        return {n: side(e) for n, e in tree.entries.items()}

    tensors = compare_tensors(sides(old), sides(new), norms=norms, progress=progress)
    return diff_result(tensors, from_ref, to_ref, old, new)


def diff_result(
    tensors: list[TensorComparison],
    from_ref: str,
    to_ref: str,
    old: Tree | None = None,
    new: Tree | None = None,
) -> DiffResult:
    """The `DiffResult` view of the engine's verdicts (trees add metadata-only changes)."""
    result = DiffResult(from_ref, to_ref, tensors=tensors)
    for t in tensors:
        if t.category == ADDED:
            result.added.append(t.name)
        elif t.category == REMOVED:
            result.removed.append(t.name)
        elif t.category == IDENTICAL:
            result.identical.append(t.name)
            if old is not None and new is not None:
                a, b = old.entries.get(t.name), new.entries.get(t.name)
                if a is not None and b is not None and not a.same_content(b):
                    result.metadata_changed.append(t.name)
        else:
            m = t.metrics
            result.changed[t.name] = TensorChange(
                t.name,
                t.old_id or "",
                t.new_id or "",
                t.old_shape or (),
                t.new_shape or (),
                t.old_dtype or "",
                t.new_dtype or "",
                l2=m.l2 if m else None,
                relative=m.relative if m else None,
                max_abs=m.max_abs if m else None,
                changed_elements=m.changed_elements if m else None,
                metrics=m,
            )
    return result


# -- metrics ----------------------------------------------------------------------------------
def block_slices(n: int, block: int = BLOCK_ELEMENTS) -> Iterator[slice]:
    """Slices covering range(n) in blocks of at most `block` elements."""
    for start in range(0, n, block):
        yield slice(start, min(n, start + block))


def real_view(arr: np.ndarray) -> np.ndarray:
    """A flat array of real numbers: complex values become (real, imag) pairs."""
    flat = arr.reshape(-1)
    if np.iscomplexobj(flat):
        flat = np.ascontiguousarray(flat).view(flat.real.dtype)
    return flat


def pow2_scale(max_abs: float) -> float:
    """A power of two near max_abs: dividing by it keeps sums of squares finite."""
    if not math.isfinite(max_abs) or max_abs <= 0.0:
        return 1.0
    return math.ldexp(1.0, math.frexp(max_abs)[1])


_EPS = sys.float_info.epsilon  # np.finfo(np.float64).eps


def _f64(arr: np.ndarray, sl: slice) -> np.ndarray:
    return np.asarray(arr[sl], dtype=np.float64)


def _bit_view(arr: np.ndarray) -> np.ndarray:
    size = arr.dtype.itemsize
    flat = np.ascontiguousarray(arr).reshape(-1)
    if size in (1, 2, 4, 8):
        return flat.view(f"u{size}")
    return flat.view(np.uint8).reshape(flat.size, size)


def _bits_changed(a: np.ndarray, b: np.ndarray) -> int:
    """Elements whose bit patterns differ (NaN -> NaN with the same payload is unchanged)."""
    bits_a, bits_b = _bit_view(a), _bit_view(b)
    changed = 0
    for sl in block_slices(int(a.size)):
        neq = bits_a[sl] != bits_b[sl]
        changed += int(np.count_nonzero(neq.any(axis=1) if neq.ndim == 2 else neq))
    return changed


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and _bits_changed(a, b) == 0


def change_metrics(a_raw: np.ndarray, b_raw: np.ndarray) -> ChangeMetrics | None:
    """Metrics of two same-shape tensors; None when they are the same dtype and bits."""
    same_dtype = a_raw.dtype == b_raw.dtype
    size = int(a_raw.size)
    changed = _bits_changed(a_raw, b_raw) if same_dtype else -1
    if changed == 0:
        return None
    if np.iscomplexobj(a_raw) != np.iscomplexobj(b_raw):
        a_raw, b_raw = a_raw.astype(np.complex128), b_raw.astype(np.complex128)
    a_flat, b_flat = real_view(a_raw), real_view(b_raw)
    n = int(a_flat.size)

    # Sums of squares of float32-or-narrower values cannot overflow float64; wider types are
    # first scanned for their largest finite magnitude and divided by a power of two near it.
    scale = 1.0
    if max(a_flat.dtype.itemsize, b_flat.dtype.itemsize) > 4:
        top = 0.0
        for sl in block_slices(n):
            for x in (_f64(a_flat, sl), _f64(b_flat, sl)):
                x = x[np.isfinite(x)]
                if x.size:
                    top = max(top, float(np.max(np.abs(x))))
        scale = pow2_scale(top)

    nonfinite_a = nonfinite_b = mismatched = finite_both = value_changed = 0
    dot = sa = sb = sd = abs_sum = max_abs = 0.0
    for sl in block_slices(n):
        a, b = _f64(a_flat, sl), _f64(b_flat, sl)
        if changed < 0:
            both_nan = np.count_nonzero(np.isnan(a) & np.isnan(b))
            value_changed += int(np.count_nonzero(a != b) - both_nan)
        fa, fb = np.isfinite(a), np.isfinite(b)
        if not (fa.all() and fb.all()):
            nonfinite_a += int(a.size - np.count_nonzero(fa))
            nonfinite_b += int(b.size - np.count_nonzero(fb))
            both = fa & fb
            ao, bo = a[~both], b[~both]  # consistent when both NaN or the same infinity
            mismatched += int(np.count_nonzero(~((np.isnan(ao) & np.isnan(bo)) | (ao == bo))))
            a, b = a[both], b[both]
        finite_both += int(a.size)
        if a.size == 0:
            continue
        if scale != 1.0:
            a, b = a / scale, b / scale  # never in place: `a` may be the caller's array
        d = b - a
        absd = np.abs(d)
        max_abs = max(max_abs, float(absd.max()) * scale)
        abs_sum += float(absd.sum()) * scale
        dot += float(np.dot(a, b))
        sa += float(np.dot(a, a))
        sb += float(np.dot(b, b))
        sd += float(np.dot(d, d))
    if changed < 0:
        changed = value_changed if n == size else _complex_changed(a_raw, b_raw)

    ra, rb = math.sqrt(sa), math.sqrt(sb)
    if sa == 0.0 and sb == 0.0:
        cosine, one_minus = 1.0, 0.0
    elif sa == 0.0 or sb == 0.0:
        cosine, one_minus = 0.0, 1.0
    else:
        cosine = max(-1.0, min(1.0, dot / math.sqrt(sa * sb)))
        # 1 - cos = (‖d‖² - (‖a‖ - ‖b‖)²) / (2‖a‖‖b‖): exact for tiny changes, unlike 1 - cos.
        gap = (sa - sb) / (ra + rb)
        numerator = sd - gap * gap
        if numerator <= 16 * _EPS * sd:  # parallel up to rounding: no change of direction
            numerator = 0.0
        one_minus = max(0.0, min(2.0, numerator / (2.0 * ra * rb)))
    norm_a, norm_b, l2 = ra * scale, rb * scale, math.sqrt(sd) * scale
    relative = l2 / norm_a if norm_a > 0.0 else (0.0 if l2 == 0.0 else math.inf)
    return ChangeMetrics(
        elements=size,
        changed_elements=changed,
        l2=l2,
        relative=relative,
        max_abs=max_abs,
        mean_abs=abs_sum / finite_both if finite_both else 0.0,
        rmse=math.sqrt(sd / finite_both) * scale if finite_both else 0.0,
        norm_a=norm_a,
        norm_b=norm_b,
        cosine=cosine,
        one_minus_cosine=one_minus,
        nonfinite_a=nonfinite_a,
        nonfinite_b=nonfinite_b,
        nonfinite_mismatched=mismatched,
    )


def nonfinite_count(arr: np.ndarray) -> int:
    """NaN and infinite values in `arr` (0 for integer and boolean dtypes)."""
    if arr.dtype.kind in "biu":
        return 0
    flat = real_view(arr)
    total = 0
    for sl in block_slices(int(flat.size)):
        total += int(sl.stop - sl.start - np.count_nonzero(np.isfinite(_f64(flat, sl))))
    return total


def _complex_changed(a_raw: np.ndarray, b_raw: np.ndarray) -> int:
    a = a_raw.reshape(-1).astype(np.complex128)
    b = b_raw.reshape(-1).astype(np.complex128)
    return int(np.count_nonzero(a != b))


def _size(shape: tuple[int, ...] | None) -> int:
    if shape is None:
        return 0
    return int(np.prod(shape, dtype=np.int64)) if shape else 1
