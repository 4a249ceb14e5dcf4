"""NumPy `.npz` archives, read member by member; pickled object arrays are never loaded.

NumPy has no names for bfloat16 / float8, so such arrays are stored as same-width unsigned
integers and the real dtypes are listed in a JSON entry, `__coral_dtypes__`.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from coral.core.dtypes import dtype_name, numpy_dtype
from coral.core.tensor_checks import (
    InvalidShapeError,
    check_fits_memory,
    checked_shape,
    element_count,
)
from coral.errors import CoralError, InvalidFileError, UnsupportedDtypeError
from coral.integrations.formats._common import (
    Checkpoint,
    LazyTensors,
    atomic_write,
    check_tensor_name,
    raw_bytes,
)

SUFFIXES = (".npz",)
DTYPES_KEY = "__coral_dtypes__"
_MAX_HEADER = 10000  # numpy's own default bound on a .npy header
_MAX_DTYPES_JSON = 1 << 20
_READ_BYTES = 16 << 20
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _native(arr: np.ndarray) -> bool:
    """Whether numpy itself can name this dtype in a .npy header."""
    return arr.dtype.type.__module__ == "numpy"


def read_npz(path: Path) -> Checkpoint:
    """Every array of an .npz archive, bit-exact, each read when asked for. Every member's
    .npy header is checked against the member's size before anything is allocated: a header
    claiming more elements than the file holds is refused, as are pickled objects."""
    with _reading(path), zipfile.ZipFile(path) as zf:
        members: dict[str, tuple[zipfile.ZipInfo, _Header]] = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise InvalidFileError(f"{path}: member {info.filename!r} is not a .npy array")
            name = info.filename[: -len(".npy")]
            if name in members:
                raise InvalidFileError(f"{path}: two arrays named {name!r}")
            members[name] = (info, _header(zf, info, path, name))
        dtypes = _coral_dtypes(zf, members.pop(DTYPES_KEY, None), path)
        weights = LazyTensors()
        for name, (info, head) in members.items():
            check_tensor_name(name, path)
            if name in dtypes:
                real = numpy_dtype(dtypes[name])
                if real.itemsize != head.dtype.itemsize:
                    raise InvalidFileError(
                        f"{path}: {name!r} is stored as {head.dtype}, not {dtypes[name]} bits"
                    )
                head = replace(head, view=real)
            weights.add(name, _loader(path, info, head), head.nbytes)
    return Checkpoint(weights, {}, "npz", [path])


@dataclass(frozen=True)
class _Header:
    """What a member's .npy header says, checked against the member's size."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool
    offset: int  # where the data starts in the member
    nbytes: int
    view: np.dtype | None = None  # the real dtype of a bfloat16 / float8 array


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, name: str) -> _Header:
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, _MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, _MAX_HEADER)
        else:
            raise InvalidFileError(f"{path}: array {name!r} has .npy format {version}")
        offset = f.tell()
    if dtype.hasobject:
        raise InvalidFileError(
            f"{path}: holds pickled objects, which are never loaded",
            hint="save plain numeric arrays with np.savez",
        )
    if dtype.kind in "VSUMm" or dtype.itemsize == 0:
        raise UnsupportedDtypeError(f"{path}: array {name!r} has non-numeric dtype {dtype}")
    what = f"{path}: array {name!r}"
    try:
        dims = checked_shape(shape, what)
    except InvalidShapeError as exc:
        raise InvalidFileError(exc.message) from None
    nbytes = element_count(dims) * dtype.itemsize
    held = info.file_size - offset
    if nbytes > held:
        raise InvalidFileError(
            f"{what}: its header claims {dtype}{list(dims)} ({nbytes} bytes) but the archive "
            f"holds {max(held, 0)} bytes for it",
            hint="the file is damaged or forged; re-export it",
        )
    return _Header(dtype, dims, bool(fortran), offset, nbytes)


def _loader(path: Path, info: zipfile.ZipInfo, head: _Header) -> Callable[[], np.ndarray]:
    """Reads one member when called, straight into its array (nothing else is buffered)."""

    def read() -> np.ndarray:
        check_fits_memory(head.shape, head.dtype.itemsize, f"{path}: array {info.filename!r}")
        with _reading(path), zipfile.ZipFile(path) as zf, zf.open(info) as f:
            f.seek(head.offset)
            arr = np.empty(head.shape[::-1] if head.fortran else head.shape, dtype=head.dtype)
            buf = raw_bytes(arr)
            done = 0
            while done < head.nbytes:
                chunk = f.read(min(_READ_BYTES, head.nbytes - done))
                if not chunk:
                    raise InvalidFileError(f"{path}: array {info.filename!r} is truncated")
                buf[done : done + len(chunk)] = chunk
                done += len(chunk)
        if head.fortran:
            arr = np.ascontiguousarray(arr.T)
        return arr.view(head.view) if head.view is not None else arr

    return read


def _coral_dtypes(
    zf: zipfile.ZipFile, member: tuple[zipfile.ZipInfo, _Header] | None, path: Path
) -> dict[str, str]:
    """The `__coral_dtypes__` entry: array name -> real dtype name."""
    if member is None:
        return {}
    info, head = member
    if head.nbytes > _MAX_DTYPES_JSON:
        raise InvalidFileError(f"{path}: {DTYPES_KEY} is {head.nbytes} bytes (at most 1 MiB)")
    raw = _loader(path, info, head)().tobytes()
    try:
        doc = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidFileError(f"{path}: {DTYPES_KEY} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise InvalidFileError(f"{path}: {DTYPES_KEY} is not a map of names to dtype names")
    return doc


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn what a damaged archive raises into InvalidFileError (a missing file stays one)."""
    try:
        yield
    except (FileNotFoundError, CoralError):
        raise
    except ValueError as exc:  # a bad .npy header
        raise InvalidFileError(f"{path}: not a valid .npz archive ({exc})") from exc
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        KeyError,
        NotImplementedError,  # a compression method zipfile lacks
        RuntimeError,  # an encrypted member
    ) as exc:
        raise InvalidFileError(f"{path}: truncated or not an .npz archive ({exc})") from exc


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
