"""`coral ci validate` and `coral ci validate-files`: check a commit (or plain weight files)
against a schema, tensor by tensor.

One pass over the tensors, each read at most once and dropped before the next: its name, shape
and dtype against the schema's `[tensors]` specs, its values for NaN / infinity / `max_abs`,
its size against the limits, and (with a base) its relative L2 change since the base, through
the diff engine (`compare_tensors`), which reads the base's tensor only when the two differ.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coral.core.dtypes import dtype_name, is_float
from coral.core.tensor_checks import element_count
from coral.core.units import human_bytes
from coral.errors import CoralError
from coral.porcelain.ci.schema import TensorSpec, ValidationSchema, finite_limit, load_schema
from coral.porcelain.compare import tensor_select
from coral.version_control.diff import (
    ADDED,
    IDENTICAL,
    SHAPE_CHANGED,
    TensorComparison,
    TensorSide,
    block_slices,
    compare_tensors,
    natural_key,
    real_view,
)
from coral.version_control.repository import Repository

Advance = Callable[[int], None]
CHECKS = (  # what a violation can be, in the order a tensor's violations are listed
    "missing",
    "unlisted",
    "shape",
    "dtype",
    "empty",
    "nan",
    "inf",
    "max_abs",
    "tensor_bytes",
    "drift",
    "total_bytes",
    "parameters",
    "tensors",
    "file_bytes",
    "unreadable",
)
MODEL_CHECKS = ("total_bytes", "parameters", "tensors")
SKIPPED_SUFFIXES = (".h5", ".hdf5")  # weight files Coral does not read: only their size is checked


@dataclass(frozen=True)
class Violation:
    """One broken constraint: `subject: problem (limit)`."""

    subject: str  # a tensor name, `FILE:TENSOR`, a file, or "model" for whole-model limits
    check: str  # one of CHECKS
    problem: str
    limit: str

    @property
    def line(self) -> str:
        return f"{self.subject}: {self.problem} ({self.limit})"

    def to_dict(self) -> dict[str, str]:
        return {
            "subject": self.subject,
            "check": self.check,
            "problem": self.problem,
            "limit": self.limit,
            "line": self.line,
        }


@dataclass(frozen=True)
class Drift:
    """One tensor's change since the base: `relative` = ||b - a|| / ||a|| (0 when identical,
    None when there is no element-wise change: a new tensor or a new shape)."""

    name: str
    category: str  # the diff engine's: identical, changed, shape_changed, added
    relative: float | None
    limit: float | None = None
    pattern: str | None = None  # the [drift] pattern the limit comes from
    nonfinite_changed: int = 0  # positions whose NaN / inf values differ (left out of the norms)

    @property
    def exceeded(self) -> bool:
        if self.limit is None or self.category == ADDED:
            return False
        return self.relative is None or not self.relative <= self.limit

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "relative": self.relative,
            "limit": self.limit,
            "pattern": self.pattern,
            "exceeded": self.exceeded,
            "nonfinite_changed": self.nonfinite_changed,
        }


@dataclass
class ValidationResult:
    """What a validation found; `ok` when nothing is violated."""

    target: str  # the ref as given, or the files
    commit_hash: str | None
    schema: str | None  # the schema file (None: the default checks)
    tensors: int = 0
    parameters: int = 0
    bytes: int = 0
    violations: list[Violation] = field(default_factory=list)
    base: str | None = None
    base_commit: str | None = None
    drift: list[Drift] = field(default_factory=list)  # largest relative change first
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files whose format Coral does not read
    sizes_only: bool = False  # files checked for their size alone
    training_state_skipped: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        """One line: what was checked and the verdict."""
        where = self.target + (f" ({self.commit_hash[:10]})" if self.commit_hash else "")
        checked = f"{self.tensors} tensor{'s' if self.tensors != 1 else ''}"
        checked += f", {human_bytes(self.bytes)}"
        if self.sizes_only:
            checked = "file sizes only"
        if self.base:
            checked += f", drift against {self.base}"
        n = len(self.violations)
        verdict = "ok" if not n else f"{n} violation{'s' if n != 1 else ''}"
        return f"{where}: {verdict} ({checked})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "commit": self.commit_hash,
            "schema": self.schema,
            "ok": self.ok,
            "tensors": self.tensors,
            "parameters": self.parameters,
            "bytes": self.bytes,
            "violations": [v.to_dict() for v in self.violations],
            "base": self.base,
            "base_commit": self.base_commit,
            "drift": [d.to_dict() for d in self.drift],
            "files": list(self.files),
            "skipped": list(self.skipped),
            "training_state_skipped": self.training_state_skipped,
            "summary": self.summary(),
        }


# -- values -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueScan:
    nan: int
    inf: int
    max_abs: float | None  # largest finite |value| (None: no finite value, or not numeric)


def scan_values(data: np.ndarray) -> ValueScan:
    """NaN and infinity counts and the largest finite magnitude, block by block (float64
    copies of a block at a time, never of the whole tensor)."""
    if data.size == 0:
        return ValueScan(0, 0, None)
    floating = data.dtype.kind in "fc" or is_float(_name(data.dtype))
    if data.dtype.kind not in "biu" and not floating:
        return ValueScan(0, 0, None)
    flat = real_view(np.ascontiguousarray(data))
    nan = inf = 0
    largest: float | None = None
    for sl in block_slices(int(flat.size)):
        block = np.array(flat[sl], dtype=np.float64)  # a copy: made absolute in place
        np.abs(block, out=block)
        if floating:
            finite = np.isfinite(block)
            nans = int(np.count_nonzero(np.isnan(block)))
            nan += nans
            inf += int(block.size - np.count_nonzero(finite)) - nans
            top = float(np.max(block, where=finite, initial=-1.0))
        else:
            top = float(block.max())
        if top >= 0:
            largest = top if largest is None else max(largest, top)
    return ValueScan(nan, inf, largest)


def _name(dtype: np.dtype) -> str:
    try:
        return dtype_name(dtype)
    except CoralError:
        return str(dtype)


# -- the checks ---------------------------------------------------------------------------------


@dataclass
class _Tensor:
    """One tensor to check: what is known without reading, and how to read it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    load: Callable[[], np.ndarray]
    content_id: str | None = None


class _Checker:
    """Applies a schema to tensors one at a time, then to the totals."""

    def __init__(
        self, schema: ValidationSchema, result: ValidationResult, prefix: str = ""
    ) -> None:
        self.schema = schema
        self.result = result
        self.prefix = prefix  # before each tensor name in a violation (`FILE:` for files)
        self.matched: set[str] = set()

    def add(self, subject: str, check: str, problem: str, limit: str) -> None:
        self.result.violations.append(Violation(subject, check, problem, limit))

    def tensor(self, t: _Tensor) -> None:
        s, subject = self.schema, self.prefix + t.name
        nbytes = element_count(t.shape) * _itemsize(t.dtype)
        self.result.tensors += 1
        self.result.parameters += element_count(t.shape)
        self.result.bytes += nbytes
        specs = s.specs_for(t.name)
        self.matched.update(spec.pattern for spec in specs)
        if s.tensors and not specs and not s.allow_unlisted:
            self.add(subject, "unlisted", "not in the schema", "allow_unlisted = false")
        for spec in specs:
            self._spec(subject, t, spec)
        if not s.allow_empty and element_count(t.shape) == 0:
            self.add(
                subject, "empty", f"empty tensor, shape {_shape(t.shape)}", "allow_empty = false"
            )
        limit = s.limits.tensor_bytes
        if limit is not None and nbytes > limit:
            self.add(
                subject,
                "tensor_bytes",
                f"size {human_bytes(nbytes)}",
                f"limits.tensor_bytes = {human_bytes(limit)}",
            )

    def _spec(self, subject: str, t: _Tensor, spec: TensorSpec) -> None:
        where = f'"{spec.pattern}"' if spec.is_pattern else "schema"
        if not spec.shape_ok(t.shape):
            self.add(
                subject, "shape", f"shape {_shape(t.shape)}", f"{where}: shape {spec.shape_text()}"
            )
        if spec.dtypes and t.dtype not in spec.dtypes:
            self.add(
                subject, "dtype", f"dtype {t.dtype}", f"{where}: dtype {'|'.join(spec.dtypes)}"
            )

    def values(self, t: _Tensor, data: np.ndarray) -> None:
        s, subject = self.schema, self.prefix + t.name
        scan = scan_values(data)
        if scan.nan and not s.allow_nan:
            self.add(
                subject, "nan", f"{scan.nan} NaN value{'s' * (scan.nan != 1)}", "allow_nan = false"
            )
        if scan.inf and not s.allow_inf:
            self.add(
                subject,
                "inf",
                f"{scan.inf} infinite value{'s' * (scan.inf != 1)}",
                "allow_inf = false",
            )
        for spec in s.specs_for(t.name):
            if (
                spec.max_abs is not None
                and scan.max_abs is not None
                and scan.max_abs > spec.max_abs
            ):
                where = f'"{spec.pattern}"' if spec.is_pattern else "schema"
                self.add(
                    subject,
                    "max_abs",
                    f"largest |value| {scan.max_abs:.4g}",
                    f"{where}: max_abs {spec.max_abs:g}",
                )

    def finish(self, subject: str = "model") -> None:
        for spec in self.schema.tensors:
            if spec.required and spec.pattern not in self.matched:
                what = "no tensor matches" if spec.is_pattern else "no such tensor"
                name = f'"{spec.pattern}"' if spec.is_pattern else spec.pattern
                self.add(self.prefix + name, "missing", what, "required = true")
        r, limits = self.result, self.schema.limits
        for check, value, limit, text in (
            ("total_bytes", r.bytes, limits.total_bytes, human_bytes),
            ("parameters", r.parameters, limits.parameters, _count),
            ("tensors", r.tensors, limits.tensors, _count),
        ):
            if limit is not None and value > limit:
                what = "of tensors" if check == "total_bytes" else check
                self.add(subject, check, f"{text(value)} {what}", f"limits.{check} = {text(limit)}")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _count(n: int) -> str:
    return f"{n:,}"


def _itemsize(dtype: str) -> int:
    from coral.core.dtypes import numpy_dtype

    return int(numpy_dtype(dtype).itemsize)


def _once(load: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """`load`, read on the first call only (the tensor's values, shared by the checks)."""
    held: list[np.ndarray] = []

    def get() -> np.ndarray:
        if not held:
            held.append(load())
        return held[0]

    return get


def _run(
    checker: _Checker,
    tensors: Iterable[_Tensor],
    drift: Callable[[_Tensor], None] | None,
    progress: Advance | None,
) -> None:
    for t in tensors:
        t.load = _once(t.load)
        checker.tensor(t)
        if checker.schema.reads_values:
            checker.values(t, t.load())
        if drift is not None:
            drift(t)
        t.load = _dropped  # the values go before the next tensor is read
        if progress is not None:
            progress(1)


def _dropped() -> np.ndarray:
    raise RuntimeError("tensor values were already released")


# -- a commit -----------------------------------------------------------------------------------


def validate_commit(
    repo: Repository,
    ref: str = "HEAD",
    *,
    schema: ValidationSchema | None = None,
    base: str | None = None,
    progress: Advance | None = None,
) -> ValidationResult:
    """Check the commit `ref` names against `schema` (the default checks without one), and its
    drift against `base` (default: the schema's `base`). `progress(1)` per tensor."""
    schema = schema or ValidationSchema()
    commit = repo.get_commit(ref)
    base = base or schema.base
    result = ValidationResult(ref, commit.commit_hash, schema.source)
    tree = repo.read_tree(commit.tree_id)
    select = _selector(schema)
    names = sorted((n for n in tree.entries if select(n)), key=natural_key)
    result.training_state_skipped = len(tree.entries) - len(names)
    checker = _Checker(schema, result)

    def tensors() -> Iterator[_Tensor]:
        for n in names:
            e = tree.entries[n]
            yield _Tensor(n, tuple(e.shape), e.dtype, _loader(repo, e.tensor_id, n), e.tensor_id)

    measure: Callable[[_Tensor], None] | None = None
    if base is not None:
        base_commit = repo.get_commit(base)
        result.base, result.base_commit = base, base_commit.commit_hash
        base_tree = repo.read_tree(base_commit.tree_id)

        def measure(t: _Tensor) -> None:
            limit = schema.drift_limit(t.name)
            if schema.drift and limit is None:
                return  # a schema with [drift] limits measures only what they name
            old = base_tree.entries.get(t.name)
            if old is None:
                verdict = TensorComparison(t.name, ADDED)
            else:
                a = TensorSide(
                    tuple(old.shape), old.dtype, _loader(repo, old.tensor_id, t.name), old.tensor_id
                )
                b = TensorSide(t.shape, t.dtype, t.load, t.content_id)
                verdict = compare_tensors({t.name: a}, {t.name: b})[0]
            result.drift.append(_drift(verdict, limit))

    _run(checker, tensors(), measure, progress)
    checker.finish()
    for d in result.drift:
        if d.exceeded:
            checker.add(d.name, "drift", _drift_problem(d, base or ""), _drift_limit(d))
    result.drift.sort(key=lambda d: (-(d.relative if d.relative is not None else math.inf), d.name))
    result.violations.sort(key=_order)
    return result


def _order(v: Violation) -> tuple[bool, list[tuple[int, int, str]], int]:
    """Tensors by name, each one's violations in CHECKS order; whole-model limits last."""
    return (v.check in MODEL_CHECKS, natural_key(v.subject), CHECKS.index(v.check))


def _loader(repo: Repository, tensor_id: str, name: str) -> Callable[[], np.ndarray]:
    return lambda: repo.store.load(tensor_id, name).data


def _drift(verdict: TensorComparison, limit: tuple[str, float] | None) -> Drift:
    relative: float | None
    if verdict.category == IDENTICAL:
        relative = 0.0
    elif verdict.metrics is not None:
        relative = float(verdict.metrics.relative)
    else:
        relative = None
    pattern, value = limit if limit is not None else (None, None)
    moved = verdict.metrics.nonfinite_mismatched if verdict.metrics is not None else 0
    return Drift(verdict.name, verdict.category, relative, value, pattern, moved)


def _drift_problem(d: Drift, base: str) -> str:
    if d.category == SHAPE_CHANGED:
        return f"shape changed since {base}"
    if d.relative is None:
        return f"changed since {base}, no relative change measurable"
    return f"relative change {d.relative:.4g} since {base}"


def _drift_limit(d: Drift) -> str:
    return f'drift "{d.pattern}" <= {finite_limit(d.limit or 0.0)}'


# -- plain files --------------------------------------------------------------------------------


def validate_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    schema: ValidationSchema | None = None,
    max_bytes: int | None = None,
    size_only: bool = False,
    progress: Advance | None = None,
) -> ValidationResult:
    """The checks of `validate_commit` (no drift) on weight files (safetensors, `.pt` read
    with weights_only, `.npz`), each on its own: a file's tensors are read one at a time.
    `max_bytes` limits each file's size on disk; `size_only` checks only that."""
    from coral.integrations.formats import load_checkpoint

    schema = schema or ValidationSchema()
    files = [Path(p) for p in paths]
    target = str(files[0]) if len(files) == 1 else f"{len(files)} files"
    result = ValidationResult(target, None, schema.source, sizes_only=size_only)
    for path in files:
        result.files.append(str(path))
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            result.violations.append(
                Violation(
                    str(path),
                    "file_bytes",
                    f"file is {human_bytes(size)}",
                    f"--max-bytes {human_bytes(max_bytes)}",
                )
            )
        if size_only:
            continue
        if path.suffix.lower() in SKIPPED_SUFFIXES:
            result.skipped.append(str(path))
            continue
        part = ValidationResult(str(path), None, schema.source)
        checker = _Checker(schema, part, prefix=f"{path}:")
        try:
            weights = load_checkpoint(path).weights
            _run(checker, _file_tensors(path, weights, schema), None, progress)
        except CoralError as exc:
            problem = exc.message.removeprefix(f"{path}: ")
            part.violations.append(Violation(str(path), "unreadable", problem, "a weight file"))
        else:
            checker.finish(str(path))
        result.violations += sorted(part.violations, key=_order)
        result.tensors += part.tensors
        result.parameters += part.parameters
        result.bytes += part.bytes
        result.training_state_skipped += part.training_state_skipped
    return result


def _file_tensors(
    path: Path, weights: Mapping[str, Any], schema: ValidationSchema
) -> Iterator[_Tensor]:
    select = _selector(schema)
    for name in sorted(weights, key=natural_key):
        if not select(name):
            continue
        data = np.asarray(weights[name])  # read now: the shape and dtype are the array's
        yield _Tensor(name, tuple(data.shape), _name(data.dtype), _held(data))
        del data


def _held(data: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: data


def _selector(schema: ValidationSchema) -> Callable[[str], bool]:
    """The tensors a validation covers: training state only when the schema asks for it."""
    return tensor_select(None, schema.include_training_state) or (lambda _name: True)


def resolve_schema(
    repo_root: Path | None, path: str | os.PathLike[str] | None, config: Mapping[str, Any]
) -> ValidationSchema | None:
    """The schema `--schema` names, else the repository config's `[ci] schema` (a path
    relative to the repository's folder), else None (the default checks)."""
    if path is not None:
        return load_schema(path)
    ci = config.get("ci") if isinstance(config.get("ci"), Mapping) else None
    configured = ci.get("schema") if ci else None
    if not configured:
        return None
    p = Path(str(configured))
    if not p.is_absolute() and repo_root is not None:
        p = repo_root / p
    return load_schema(p)
