"""PyTorch `.pt` / `.bin` / `.pth` / `.ckpt` state dicts, loaded only with `weights_only=True`.

Nested containers (a Lightning checkpoint's `state_dict`, an optimizer's `state`) are flattened
with "." between keys; values that are not tensors (epoch, hyper-parameters) become metadata.
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coral.errors import CoralError, InvalidFileError, UnsafeFileError
from coral.integrations.formats._common import Checkpoint, atomic_write, check_tensor_name

SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise CoralError(
            "PyTorch is needed to read or write .pt/.bin files",
            hint="pip install 'coral-vcs[torch]' (torch==2.13.0), or use safetensors/.npz",
        ) from exc
    return torch


def _is_weights_only_refusal(exc: BaseException) -> bool:
    return isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower()


def _flatten(
    obj: Any, prefix: str, weights: dict[str, np.ndarray], meta: dict[str, Any], path: Path
) -> None:
    torch = _torch()
    from coral.integrations.torch_convert import torch_to_numpy

    if isinstance(obj, torch.Tensor):
        name = check_tensor_name(prefix, path)
        if name in weights:
            raise InvalidFileError(f"{path}: two entries flatten to the name {name!r}")
        # sparse / quantized / meta tensors, odd dtypes and 0-stride giants are refused here
        weights[name] = torch_to_numpy(obj, what=f"{path}: tensor {name!r}")
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), weights, meta, path)
    elif isinstance(obj, list | tuple) and any(
        isinstance(v, torch.Tensor | Mapping | list | tuple) for v in obj
    ):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), weights, meta, path)
    else:
        key = prefix or "value"
        try:
            json.dumps(obj)
        except (TypeError, ValueError):
            obj = repr(obj)
        meta[key] = obj


def read_torch(path: Path) -> Checkpoint:
    """Tensors of a torch checkpoint. Pickles that would run code are refused (UnsafeFileError);
    damaged files give InvalidFileError."""
    obj = load_torch_object(path)
    weights: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    try:
        _flatten(obj, "", weights, meta, path)
    except RecursionError:
        raise InvalidFileError(f"{path}: containers nested too deeply to be a state dict") from None
    return Checkpoint(weights, meta, "pt", [path])


def load_torch_object(path: Path) -> Any:
    """What a torch checkpoint holds (nested dicts, lists and CPU tensors), loaded with
    `weights_only=True`: UnsafeFileError for a pickle that would run code, InvalidFileError for
    a damaged file."""
    torch = _torch()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols it then refuses
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        if _is_weights_only_refusal(exc):
            first = str(exc).strip().splitlines()
            detail = next((ln.strip() for ln in first if "GLOBAL" in ln or "Unsupported" in ln), "")
            raise UnsafeFileError(
                f"{path}: refused to load: the pickle asks to run code or build objects other than"
                f" tensors{f' ({detail})' if detail else ''}",
                hint="only tensors and plain containers are loaded (weights_only=True); if you"
                " trust the file, re-save its state_dict with torch.save or as safetensors",
            ) from exc
        raise InvalidFileError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        reason = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise InvalidFileError(f"{path}: truncated or not a torch checkpoint ({reason})") from exc
    return obj


def write_torch(arrays: Mapping[str, np.ndarray], path: Path) -> Path:
    """A flat state dict saved with torch.save (bit-exact for every dtype torch has)."""
    torch = _torch()
    from coral.integrations.torch_convert import numpy_to_torch

    state = {name: numpy_to_torch(arr) for name, arr in arrays.items()}
    with atomic_write(path) as f:
        torch.save(state, f)
    return path
