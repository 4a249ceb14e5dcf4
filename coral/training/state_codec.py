"""Nested training state (optimizer and scheduler state dicts, RNG states, loop counters) as
tensors plus a JSON skeleton.

`encode_state` walks a nested structure of dicts, lists, tuples and scalars; every tensor
(torch or numpy) found is taken out and named `prefix/path/to/it`, and its place in the
skeleton holds a reference to that name. `decode_state` puts the structure back together,
bit-exact: floats survive JSON (repr round-trips), NaN/inf and numpy scalars are tagged, tuples
stay tuples and dicts with non-string keys keep their key types. Tensors that share storage
(tied weights) are stored once and come back as one shared tensor.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from coral.core.dtypes import dtype_name, numpy_dtype
from coral.core.tensor_convert import numpy_to_torch
from coral.errors import CoralError

TENSOR = "__tensor__"
ALIAS = "__alias__"
FLOAT = "__float__"
TUPLE = "__tuple__"
DICT = "__dict__"
SET = "__set__"
BYTES = "__bytes__"
NPSCALAR = "__npscalar__"
TORCH_OBJ = "__torch__"
UNENCODABLE = "__unencodable__"
_TAGS = frozenset({TENSOR, ALIAS, FLOAT, TUPLE, DICT, SET, BYTES, NPSCALAR, TORCH_OBJ, UNENCODABLE})


class StateEncodingError(CoralError):
    default_hint = "keep training state to tensors, numbers, strings, lists, tuples and dicts"


def _is_torch_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "untyped_storage")


def storage_key(t: Any) -> tuple | None:
    """Identity of a torch tensor's view: same key, same memory (tied weights)."""
    if t.numel() == 0 or t.device.type == "meta":
        return None
    return (
        str(t.device),
        t.untyped_storage().data_ptr(),
        t.storage_offset(),
        tuple(t.shape),
        tuple(t.stride()),
        str(t.dtype),
    )


class StateEncoder:
    """Collects the tensors of one or more nested structures under unique names."""

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.tensors: dict[str, Any] = {}
        self._by_storage: dict[tuple, str] = {}
        self.skipped: list[str] = []

    def encode(self, obj: Any, prefix: str) -> Any:
        """The JSON skeleton of `obj`; its tensors go to `self.tensors` under `prefix/...`."""
        return self._encode(obj, prefix.rstrip("/"))

    def add_tensor(self, name: str, value: Any) -> dict[str, Any]:
        """Register one tensor under `name` (or an alias to an identical storage view)."""
        if _is_torch_tensor(value):
            key = storage_key(value)
            ref: dict[str, Any] = {"kind": "torch"}
            if key is not None and key in self._by_storage:
                ref[ALIAS] = self._by_storage[key]
                return ref
            name = self._unique(name)
            if key is not None:
                self._by_storage[key] = name
            self.tensors[name] = value
            ref[TENSOR] = name
            return ref
        name = self._unique(name)
        self.tensors[name] = value
        return {TENSOR: name, "kind": "numpy"}

    def _unique(self, name: str) -> str:
        if name not in self.tensors:
            return name
        i = 1
        while f"{name}#{i}" in self.tensors:
            i += 1
        return f"{name}#{i}"

    def _encode(self, obj: Any, path: str) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int) and not isinstance(obj, bool):
            return int(obj)
        if isinstance(obj, float):
            if math.isfinite(obj):
                return float(obj)
            return {FLOAT: repr(float(obj))}
        if isinstance(obj, np.generic):
            return {NPSCALAR: dtype_name(obj.dtype), "hex": np.asarray(obj).tobytes().hex()}
        if isinstance(obj, np.ndarray) or _is_torch_tensor(obj):
            return self.add_tensor(path, obj)
        if isinstance(obj, Mapping):
            if all(isinstance(k, str) for k in obj) and not (_TAGS & set(obj)):
                return {k: self._encode(v, f"{path}/{_component(k)}") for k, v in obj.items()}
            return {
                DICT: [
                    [self._encode(k, f"{path}/key{i}"), self._encode(v, f"{path}/{_component(k)}")]
                    for i, (k, v) in enumerate(obj.items())
                ]
            }
        if isinstance(obj, list):
            return [self._encode(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {TUPLE: [self._encode(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, (set, frozenset)):
            return {
                SET: [self._encode(v, f"{path}/{i}") for i, v in enumerate(sorted(obj, key=repr))]
            }
        if isinstance(obj, (bytes, bytearray)):
            return {BYTES: base64.b64encode(bytes(obj)).decode("ascii")}
        module = type(obj).__module__
        if module.startswith("torch"):
            import torch

            if isinstance(obj, torch.dtype):
                return {TORCH_OBJ: "dtype", "value": str(obj).removeprefix("torch.")}
            if isinstance(obj, torch.device):
                return {TORCH_OBJ: "device", "value": str(obj)}
        if self.strict:
            raise StateEncodingError(f"cannot store {type(obj).__qualname__} found at {path!r}")
        self.skipped.append(path)
        return {
            UNENCODABLE: f"{type(obj).__module__}.{type(obj).__qualname__}",
            "repr": repr(obj)[:200],
        }


def _component(key: Any) -> str:
    """A path component for a dict key: letters, digits and . _ - only."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", str(key)).strip(".") or "_"
    return text


def encode_state(obj: Any, prefix: str, strict: bool = True) -> tuple[Any, dict[str, Any]]:
    """(skeleton, tensors) for one nested structure."""
    enc = StateEncoder(strict=strict)
    return enc.encode(obj, prefix), enc.tensors


def decode_state(
    skeleton: Any,
    tensors: Mapping[str, Any],
    to_torch: Callable[[np.ndarray], Any] | None = None,
) -> Any:
    """Rebuild what `encode_state` took apart; `tensors` maps names to arrays (or WeightTensors).

    Tensors stored from torch come back as torch tensors (CPU) unless `to_torch` says otherwise;
    aliases resolve to the very same tensor object.
    """
    built: dict[str, Any] = {}

    def tensor(name: str, kind: str) -> Any:
        if name in built:
            return built[name]
        if name not in tensors:
            raise StateEncodingError(
                f"training state refers to tensor {name!r}, which the checkpoint lacks",
                hint="the checkpoint was written incompletely or its tensors were renamed",
            )
        value = tensors[name]
        arr = value.data if hasattr(value, "compute_hash") else np.asarray(value)
        if kind == "torch":
            if to_torch is not None:
                out = to_torch(arr)
            else:
                out = numpy_to_torch(np.array(arr, copy=True))
        else:
            out = np.array(arr, copy=True)
        built[name] = out
        return out

    def dec(node: Any) -> Any:
        if isinstance(node, list):
            return [dec(v) for v in node]
        if not isinstance(node, dict):
            return node
        if TENSOR in node:
            return tensor(node[TENSOR], node.get("kind", "numpy"))
        if ALIAS in node:
            return tensor(node[ALIAS], node.get("kind", "torch"))
        if FLOAT in node:
            return float(node[FLOAT])
        if TUPLE in node:
            return tuple(dec(v) for v in node[TUPLE])
        if DICT in node:
            return {_hashable(dec(k)): dec(v) for k, v in node[DICT]}
        if SET in node:
            return {dec(v) for v in node[SET]}
        if BYTES in node:
            return base64.b64decode(node[BYTES])
        if NPSCALAR in node:
            dt = numpy_dtype(node[NPSCALAR])
            return np.frombuffer(bytes.fromhex(node["hex"]), dtype=dt)[0]
        if TORCH_OBJ in node:
            import torch

            if node[TORCH_OBJ] == "dtype":
                return getattr(torch, node["value"])
            return torch.device(node["value"])
        if UNENCODABLE in node:
            return None
        return {k: dec(v) for k, v in node.items()}

    return dec(skeleton)


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def tensor_names(skeleton: Any) -> set[str]:
    """Every tensor name a skeleton refers to."""
    out: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, dict):
            if TENSOR in node:
                out.add(node[TENSOR])
            elif ALIAS in node:
                out.add(node[ALIAS])
            else:
                for v in node.values():
                    walk(v)

    walk(skeleton)
    return out
