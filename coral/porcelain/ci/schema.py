"""The constraints `coral ci validate` checks a commit against, read from a TOML, YAML or JSON
file.

```toml
base = "v1"                  # drift is measured against this ref (`--base` overrides)
allow_nan = false            # the defaults: no NaN, no infinity, no empty tensor
allow_inf = false
allow_empty = false
allow_unlisted = true        # false: every tensor must match a [tensors] pattern

[limits]                     # sizes as bytes or "64KiB", "2GB"
total_bytes = "10MB"
tensor_bytes = "4MB"
parameters = 2_000_000
tensors = 500

[tensors."encoder.weight"]   # a name, or a glob pattern ("*.bias")
shape = [64, 64]             # "*" (or -1) for a dimension of any size
dtype = "float32"            # or a list of accepted dtypes
required = true              # default: true for a name, false for a pattern
max_abs = 100.0              # largest |value| allowed

[drift]                      # largest relative L2 change ||b - a|| / ||a|| against the base
"encoder.*" = 0.05
```
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral.core.dtypes import dtype_name
from coral.core.units import parse_size
from coral.errors import CoralError

ANY_DIM = None  # a dimension a shape pattern does not constrain
_TOP_KEYS = (
    "base",
    "allow_nan",
    "allow_inf",
    "allow_empty",
    "allow_unlisted",
    "include_training_state",
    "limits",
    "tensors",
    "drift",
)
_LIMIT_KEYS = ("total_bytes", "tensor_bytes", "parameters", "tensors")
_TENSOR_KEYS = ("shape", "dtype", "required", "max_abs")
_GLOB = set("*?[")


class SchemaError(CoralError):
    """A validation schema that cannot be read or means nothing."""

    default_hint = "see `coral ci validate --help` and the Teams and CI chapter of the README"


@dataclass(frozen=True)
class TensorSpec:
    """What the tensors a pattern matches must be."""

    pattern: str
    shape: tuple[int | None, ...] | None = None  # None: any shape; a None dimension: any size
    dtypes: tuple[str, ...] = ()  # empty: any dtype
    required: bool = True
    max_abs: float | None = None

    @property
    def is_pattern(self) -> bool:
        return bool(_GLOB & set(self.pattern))

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)

    def shape_ok(self, shape: tuple[int, ...]) -> bool:
        if self.shape is None:
            return True
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape, strict=True)
        )

    def shape_text(self) -> str:
        dims = ["*" if d is None else str(d) for d in self.shape or ()]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "shape": None if self.shape is None else ["*" if d is None else d for d in self.shape],
            "dtype": list(self.dtypes),
            "required": self.required,
            "max_abs": self.max_abs,
        }


@dataclass(frozen=True)
class Limits:
    total_bytes: int | None = None
    tensor_bytes: int | None = None
    parameters: int | None = None
    tensors: int | None = None

    def to_dict(self) -> dict[str, int | None]:
        return {k: getattr(self, k) for k in _LIMIT_KEYS}


@dataclass(frozen=True)
class ValidationSchema:
    """Every constraint of one validation; `ValidationSchema()` is the default checks."""

    base: str | None = None
    allow_nan: bool = False
    allow_inf: bool = False
    allow_empty: bool = False
    allow_unlisted: bool = True
    include_training_state: bool = False
    limits: Limits = field(default_factory=Limits)
    tensors: tuple[TensorSpec, ...] = ()
    drift: tuple[tuple[str, float], ...] = ()  # (pattern, largest relative change), in order
    source: str | None = None  # the file it was read from

    def specs_for(self, name: str) -> list[TensorSpec]:
        return [s for s in self.tensors if s.matches(name)]

    def drift_limit(self, name: str) -> tuple[str, float] | None:
        """The first [drift] pattern matching `name` and its limit."""
        return next(((p, v) for p, v in self.drift if fnmatch.fnmatchcase(name, p)), None)

    @property
    def reads_values(self) -> bool:
        """Whether checking needs the tensors' values (not only names, shapes and dtypes)."""
        return not (self.allow_nan and self.allow_inf) or any(
            s.max_abs is not None for s in self.tensors
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "base": self.base,
            "allow_nan": self.allow_nan,
            "allow_inf": self.allow_inf,
            "allow_empty": self.allow_empty,
            "allow_unlisted": self.allow_unlisted,
            "include_training_state": self.include_training_state,
            "limits": self.limits.to_dict(),
            "tensors": [s.to_dict() for s in self.tensors],
            "drift": dict(self.drift),
        }


def load_schema(path: str | os.PathLike[str]) -> ValidationSchema:
    """Read a schema file (format from its suffix: .toml, .yaml / .yml, .json)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(
            f"no schema file {p}", hint="check the path given to --schema (or [ci] schema)"
        ) from None
    except UnicodeDecodeError:
        raise SchemaError(f"{p} is not a text file") from None
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = _load_yaml(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise SchemaError(
            f"cannot read {p}: {exc}",
            hint="fix the syntax; TOML is read unless the file ends in .json, .yaml or .yml",
        ) from None
    if not isinstance(data, Mapping):
        raise SchemaError(f"{p}: the schema must be a table of settings, not {type(data).__name__}")
    return parse_schema(data, source=str(p))


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:  # PyYAML is not one of Coral's own dependencies
        raise SchemaError(
            "reading a YAML schema needs PyYAML",
            hint="`pip install pyyaml`, or write the schema as TOML or JSON",
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def parse_schema(data: Mapping[str, Any], source: str | None = None) -> ValidationSchema:
    """A schema from its parsed form (what `load_schema` reads); SchemaError names a bad key."""
    where = source or "schema"
    _known(data, _TOP_KEYS, where)
    flags = {
        k: _bool(data[k], k, where)
        for k in ("allow_nan", "allow_inf", "allow_empty", "allow_unlisted")
        if k in data
    }
    if "include_training_state" in data:
        flags["include_training_state"] = _bool(
            data["include_training_state"], "include_training_state", where
        )
    base = data.get("base")
    if base is not None and (not isinstance(base, str) or not base):
        raise SchemaError(f'{where}: base must be a ref name such as "v1" or "main"')
    return ValidationSchema(
        base=base,
        limits=_limits(_table(data, "limits", where), where),
        tensors=tuple(
            _tensor_spec(str(k), v, where) for k, v in _table(data, "tensors", where).items()
        ),
        drift=tuple(
            (str(k), _number(v, f"drift {k!r}", where))
            for k, v in _table(data, "drift", where).items()
        ),
        source=source,
        **flags,
    )


def _known(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(k) for k in data if k not in keys)
    if unknown:
        raise SchemaError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
            + ", ".join(repr(k) for k in unknown),
            hint=f"valid keys here: {', '.join(keys)}",
        )


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise SchemaError(f"{where}: [{key}] must be a table, not {type(value).__name__}")
    return value


def _bool(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _number(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise SchemaError(f"{where}: {what} must be a number >= 0, not {value!r}")
    return float(value)


def _count(value: Any, what: str, where: str, size: bool) -> int:
    if isinstance(value, str) and size:
        return parse_size(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        unit = ' (bytes, or a size such as "64KiB")' if size else ""
        raise SchemaError(f"{where}: {what} must be a whole number{unit}, not {value!r}")
    return value


def _limits(data: Mapping[str, Any], where: str) -> Limits:
    _known(data, _LIMIT_KEYS, f"{where} [limits]")
    return Limits(
        **{k: _count(v, f"limits.{k}", where, size=k.endswith("bytes")) for k, v in data.items()}
    )


def _tensor_spec(pattern: str, data: Any, where: str) -> TensorSpec:
    what = f"{where} [tensors.{json.dumps(pattern)}]"
    if not isinstance(data, Mapping):
        raise SchemaError(f"{what} must be a table such as {{ shape = [64, 64] }}")
    _known(data, _TENSOR_KEYS, what)
    shape = data.get("shape")
    dims: tuple[int | None, ...] | None = None
    if shape is not None:
        if not isinstance(shape, list):
            raise SchemaError(f'{what}: shape must be a list such as [64, 64] or ["*", 64]')
        dims = tuple(_dim(d, what) for d in shape)
    dtype = data.get("dtype", [])
    names = [dtype] if isinstance(dtype, str) else dtype
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SchemaError(f'{what}: dtype must be a name such as "float32" or a list of them')
    required = data.get("required", not (_GLOB & set(pattern)))
    max_abs = data.get("max_abs")
    return TensorSpec(
        pattern,
        dims,
        tuple(_dtype(n, what) for n in names),
        _bool(required, "required", what),
        None if max_abs is None else _number(max_abs, "max_abs", what),
    )


def _dim(value: Any, what: str) -> int | None:
    if value == "*" or (isinstance(value, int) and not isinstance(value, bool) and value == -1):
        return ANY_DIM
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SchemaError(f'{what}: a dimension is a number >= 0 or "*", not {value!r}')
    return value


def _dtype(name: str, what: str) -> str:
    try:
        return dtype_name(name)
    except (TypeError, ValueError, CoralError):
        raise SchemaError(
            f"{what}: unknown dtype {name!r}",
            hint="use a dtype name such as float32, float16, bfloat16, int8",
        ) from None


def finite_limit(value: float) -> str:
    """A limit for a message: `0.05`, `1e-06`, `inf`."""
    return "inf" if math.isinf(value) else f"{value:g}"
