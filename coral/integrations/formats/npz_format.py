"""NumPy `.npz` archives, loaded with `allow_pickle=False`.

NumPy has no names for bfloat16 / float8, so such arrays are stored as same-width unsigned
integers and the real dtypes are listed in a JSON entry, `__coral_dtypes__`.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from coral.core.dtypes import dtype_name, numpy_dtype
from coral.errors import InvalidFileError, UnsupportedDtypeError
from coral.integrations.formats._common import Checkpoint, atomic_write, check_tensor_name

SUFFIXES = (".npz",)
DTYPES_KEY = "__coral_dtypes__"
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _native(arr: np.ndarray) -> bool:
    """Whether numpy itself can name this dtype in a .npy header."""
    return arr.dtype.type.__module__ == "numpy"


def read_npz(path: Path) -> Checkpoint:
    """Every array of an .npz archive, bit-exact."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            dtypes: dict[str, str] = {}
            if DTYPES_KEY in names:
                names.remove(DTYPES_KEY)
                dtypes = json.loads(archive[DTYPES_KEY].tobytes().decode())
            weights: dict[str, np.ndarray] = {}
            for name in names:
                check_tensor_name(name, path)
                arr = archive[name]
                if name in dtypes:
                    arr = arr.view(numpy_dtype(dtypes[name]))
                elif arr.dtype.kind in "OVSUMm":
                    raise UnsupportedDtypeError(
                        f"{path}: array {name!r} has non-numeric dtype {arr.dtype}"
                    )
                weights[name] = arr
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InvalidFileError(
                f"{path}: holds pickled objects, which are never loaded",
                hint="save plain numeric arrays with np.savez",
            ) from exc
        raise InvalidFileError(f"{path}: not a valid .npz archive ({exc})") from exc
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InvalidFileError(f"{path}: truncated or not an .npz archive ({exc})") from exc
    return Checkpoint(weights, {}, "npz", [path])


def write_npz(arrays: Mapping[str, np.ndarray], path: Path) -> Path:
    """An uncompressed .npz archive (as np.savez writes); other dtypes go in __coral_dtypes__."""
    if DTYPES_KEY in arrays:
        raise InvalidFileError(f"the name {DTYPES_KEY!r} is reserved in .npz exports")
    out: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for name, arr in arrays.items():
        if _native(arr):
            out[name] = arr
        else:
            width = arr.dtype.itemsize
            if width not in _UINT:
                raise UnsupportedDtypeError(f"cannot store {name!r} of dtype {arr.dtype} in .npz")
            out[name] = arr.view(_UINT[width])
            dtypes[name] = dtype_name(arr.dtype)
    if dtypes:
        out[DTYPES_KEY] = np.frombuffer(json.dumps(dtypes).encode(), dtype=np.uint8)
    with (
        atomic_write(path) as f,
        zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf,
    ):
        for name, arr in out.items():  # what np.savez does, without its keyword-name clashes
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
    return path
