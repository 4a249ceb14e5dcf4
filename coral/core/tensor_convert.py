"""Bit-exact conversion between torch tensors and numpy arrays (bfloat16/float8 included).

In core because `WeightTensor` and the fingerprints accept torch tensors; torch itself is
imported only when a conversion runs (it stays an optional dependency)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coral.core.dtypes import dtype_name, numpy_dtype
from coral.core.lazy_imports import lazy_module
from coral.core.tensor_checks import TensorTooLargeError, UnsupportedTensorError, check_fits_memory
from coral.errors import UnsupportedDtypeError

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals())

_TORCH_TO_NAME = {
    "torch.float64": "float64",
    "torch.float32": "float32",
    "torch.float16": "float16",
    "torch.bfloat16": "bfloat16",
    "torch.float8_e4m3fn": "float8_e4m3fn",
    "torch.float8_e5m2": "float8_e5m2",
    "torch.float8_e4m3fnuz": "float8_e4m3fnuz",
    "torch.float8_e5m2fnuz": "float8_e5m2fnuz",
    "torch.float8_e8m0fnu": "float8_e8m0fnu",
    "torch.int64": "int64",
    "torch.int32": "int32",
    "torch.int16": "int16",
    "torch.int8": "int8",
    "torch.uint64": "uint64",
    "torch.uint32": "uint32",
    "torch.uint16": "uint16",
    "torch.uint8": "uint8",
    "torch.bool": "bool",
    "torch.complex64": "complex64",
    "torch.complex128": "complex128",
}
_VIEW_AS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


def torch_to_numpy(tensor: Any, *, copy: bool = True, what: str = "tensor") -> np.ndarray:
    """A numpy array with the torch tensor's bits (any device).

    `copy=False` shares the memory of a contiguous CPU tensor instead of copying it: for callers
    that are done with the array before the tensor can change (a synchronous store). Sparse,
    quantized and meta tensors, dtypes Coral does not store and tensors larger than this
    machine's memory are refused (UnsupportedTensorError / UnsupportedDtypeError /
    TensorTooLargeError naming `what`) before anything is copied."""
    import torch

    check_torch_tensor(tensor, what)
    name = _TORCH_TO_NAME[str(tensor.dtype)]
    target = numpy_dtype(name)
    check_fits_memory(tuple(tensor.shape), target.itemsize, what)
    try:
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.resolve_conj().resolve_neg().contiguous()
    except (MemoryError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "alloc" not in str(exc).lower():
            raise
        raise TensorTooLargeError(
            f"{what}: not enough memory to copy {tensor.dtype}{list(tensor.shape)}"
        ) from exc
    if name in ("bfloat16",) or name.startswith("float8"):
        raw = t.view(getattr(torch, _VIEW_AS[target.itemsize])).numpy()
        return raw.view(target).reshape(tuple(t.shape))
    arr = t.numpy()
    return arr.copy() if copy and arr.base is not None else arr


def check_torch_tensor(tensor: Any, what: str = "tensor") -> None:
    """Refuse a torch tensor whose values cannot be stored as they are: sparse or other
    non-strided layouts (hint: `.to_dense()`), quantized (hint: `.dequantize()`), the meta
    device (no data), or a dtype Coral does not store."""
    import torch

    if tensor.layout != torch.strided:
        raise UnsupportedTensorError(
            f"{what} is a {tensor.layout} tensor; only dense tensors are stored",
            hint="convert it first, e.g. tensor.to_dense()",
        )
    if tensor.is_quantized:
        raise UnsupportedTensorError(
            f"{what} is quantized ({tensor.dtype}); only plain dtypes are stored bit-exact",
            hint="store tensor.dequantize(), or its int_repr() and scales as separate tensors",
        )
    if tensor.device.type == "meta":
        raise UnsupportedTensorError(
            f"{what} is on the meta device: it has a shape but no values",
            hint="materialise the model first (e.g. load its weights, or to_empty() + init)",
        )
    if str(tensor.dtype) not in _TORCH_TO_NAME:
        raise UnsupportedDtypeError(
            f"{what} has torch dtype {tensor.dtype}, which Coral does not store"
        )


def numpy_to_torch(array: np.ndarray, device: Any = None) -> Any:
    """A torch tensor with the same bits as `array` (bfloat16/float8 through a same-width view)."""
    import torch

    name = dtype_name(array.dtype)
    torch_dtype = getattr(torch, name)
    arr = np.ascontiguousarray(array).reshape(array.shape)  # keeps 0-d arrays 0-d
    if name == "bfloat16" or name.startswith("float8"):
        view = arr.view(_VIEW_AS[arr.dtype.itemsize])
        t = torch.from_numpy(view.copy()).view(torch_dtype)
    else:
        if not arr.flags.writeable:
            arr = arr.copy()
        t = torch.from_numpy(arr)
    return t.to(device) if device is not None else t
