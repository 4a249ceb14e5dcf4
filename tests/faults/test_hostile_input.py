"""Hostile input: shapes no tensor can have, headers that lie about their size, names that are
not Unicode, tensors without dense values. Each is refused with a clear CoralError before
anything is allocated or stored (the repository holds the same objects afterwards), through
the API and through `coral import`; never a raw Python exception or "bug in Coral"."""

from __future__ import annotations

import io
import json
import random
import struct
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.core.tensor_checks import (
    InvalidMetadataError,
    InvalidShapeError,
    TensorTooLargeError,
    UnsupportedTensorError,
)
from coral.core.weight_tensor import WeightMetadata, WeightTensor
from coral.errors import CoralError, InvalidFileError, InvalidNameError
from coral.integrations.formats import load_weights
from coral.version_control.repository import Repository
from tests.faults.scale import trials

ABSURD_DIMS = [2**32, 2**31, 2**63, 2**64, 10**12, 10**30, 10**100, -1, -(2**63)]
HUGE_SHAPES = [[2**32, 2**32], [10**30], [2**63], [2**62, 4], [10**12, 10**12]]


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository.init(tmp_path / "repo")
    r.add_weight("base", np.arange(6, dtype=np.float32))
    r.commit("base")
    yield r
    r.close()


def objects(repo: Repository) -> tuple[list[str], int]:
    """What the object store holds: its files (not the temporary ones of background
    maintenance) and its tensor count."""
    repo.store.wait_for_maintenance()
    root = repo.coral_dir / "objects"
    files = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    return sorted(str(p) for p in files if p.parts[0] != "tmp"), len(repo.store.list())


def refused(repo: Repository, call: Callable[[], Any], error: type[Exception] = CoralError) -> str:
    """Run `call`, which must raise `error` (a CoralError) and store nothing; its text."""
    before = objects(repo)
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, CoralError), type(info.value)
    assert objects(repo) == before, "a refused input left objects behind"
    assert repo.staged_changes() == {}
    return str(info.value)


def lazy(shape: Any, dtype: Any = np.float32, data: np.ndarray | None = None) -> WeightTensor:
    meta = WeightMetadata("w", shape, np.dtype(dtype))
    values = np.zeros(1, np.float32) if data is None else data
    return WeightTensor(metadata=meta, loader=lambda: values)


# -- shapes through the API ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [*HUGE_SHAPES, [-1], [3, -4], [2.5], [True], ["3"]])
def test_absurd_shapes_of_a_lazy_weight_tensor_are_refused(
    repo: Repository, shape: list[Any]
) -> None:
    refused(repo, lambda: repo.add_weight("w", lazy(shape)), InvalidShapeError)


def test_random_shape_claims_through_the_api(repo: Repository) -> None:
    rng = random.Random(14)
    for _ in range(trials(40)):
        shape = [rng.choice([*ABSURD_DIMS, 1, 7]) for _ in range(rng.randint(1, 4))]
        if all(0 <= d <= 7 for d in shape):
            shape[0] = rng.choice(ABSURD_DIMS)
        refused(repo, lambda s=shape: repo.add_weight("w", lazy(s)))  # type: ignore[misc]


def test_a_view_claiming_terabytes_is_refused_before_it_is_copied(repo: Repository) -> None:
    view = np.broadcast_to(np.float64(0), (10**7, 10**7))  # 800 TB, 0 bytes of its own
    text = refused(repo, lambda: repo.add_weight("w", view), TensorTooLargeError)
    assert "memory" in text


def test_lazy_data_that_does_not_match_its_claimed_shape(repo: Repository) -> None:
    text = refused(repo, lambda: repo.add_weight("w", lazy([5])), InvalidShapeError)
    assert "[5]" in text and "[1]" in text


def test_values_that_are_no_tensor(repo: Repository) -> None:
    for value in ([1.0, 2.0], {"a": 1}, object()):
        refused(repo, lambda v=value: repo.add_weight("w", v), UnsupportedTensorError)


# -- torch tensors without plain dense values ------------------------------------------------------
def _torch() -> Any:
    return pytest.importorskip("torch")


@pytest.mark.parametrize(
    ("make", "hint"),
    [
        (lambda t: t.eye(3).to_sparse(), "to_dense"),
        (lambda t: t.eye(3).to_sparse_csr(), "to_dense"),
        (lambda t: t.quantize_per_tensor(t.ones(3), 0.1, 0, t.quint8), "dequantize"),
        (lambda t: t.empty(4, 4, device="meta"), "materialise"),
        (lambda t: t.zeros(1).expand(10**7, 10**7), "memory"),
    ],
    ids=["sparse-coo", "sparse-csr", "quantized", "meta", "0-stride-giant"],
)
def test_torch_tensors_without_dense_values(
    repo: Repository, make: Callable[[Any], Any], hint: str
) -> None:
    torch = _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sparse CSR is "beta"
        tensor = make(torch)
    assert hint in refused(repo, lambda: repo.add_weight("w", tensor))
    assert hint in refused(repo, lambda: repo.add_all_weights({"ok": torch.ones(2), "w": tensor}))


# -- names and metadata that are not Unicode -------------------------------------------------------
@pytest.mark.parametrize("name", ["w\udc80", "\ud800", "layer.\udfff.weight", "x" * 5000])
def test_bad_tensor_names_store_nothing(repo: Repository, name: str) -> None:
    refused(repo, lambda: repo.add_weight(name, np.ones(3, np.float32)), InvalidNameError)
    both = {"fine.weight": np.ones(4, np.float32), name: np.ones(3, np.float32)}
    refused(repo, lambda: repo.add_all_weights(both), InvalidNameError)
    torch = pytest.importorskip("torch")
    refused(repo, lambda: repo.add_weight(name, torch.ones(3)), InvalidNameError)


def test_bad_model_file_paths_store_nothing(repo: Repository) -> None:
    refused(
        repo, lambda: repo.add_files({"ok.json": b"{}", "t\udc80.json": b"{}"}), InvalidNameError
    )


def test_tensor_metadata_that_a_tree_cannot_hold(repo: Repository) -> None:
    odd = WeightTensor(np.ones(2, np.float32), name="w", layer_type="Linear\udc80")
    refused(repo, lambda: repo.add_weight("w", odd), InvalidMetadataError)
    big = WeightTensor(np.ones(1, np.float32), name="w")
    big.metadata.extra["blob"] = "x" * (1 << 20)
    refused(repo, lambda: repo.add_weight("w", big), InvalidMetadataError)


def test_the_repository_still_works_after_every_refusal(repo: Repository) -> None:
    refused(repo, lambda: repo.add_weight("w\udc80", np.ones(3)))
    repo.add_weight("w", np.full(3, 2.0, np.float32))
    repo.commit("after")
    assert sorted(repo.get_all_weights()) == ["base", "w"]
    assert repo.fsck().ok


# -- files that lie ------------------------------------------------------------------------------
def safetensors_bytes(header: dict[str, Any], data: bytes = b"") -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def npy_member(shape: Any, dtype: str = "<f4", data: bytes = b"\0" * 16) -> bytes:
    """A .npy file whose header claims `shape` (whatever the data holds)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    header += " " * (-(len(header) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def npz_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def torch_bytes(obj: Any) -> bytes:
    torch = _torch()
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def hostile_files() -> dict[str, Callable[[], bytes]]:
    """name -> bytes of a checkpoint that must be refused."""
    st = safetensors_bytes
    f32 = {"dtype": "F32"}
    files: dict[str, Callable[[], bytes]] = {
        "shape-2^64.safetensors": lambda: st(
            {"a": {**f32, "shape": [2**32, 2**32], "data_offsets": [0, 0]}}
        ),
        "shape-1e30.safetensors": lambda: st(
            {"a": {**f32, "shape": [10**30], "data_offsets": [0, 4]}}, b"\0" * 4
        ),
        "shape-negative.safetensors": lambda: st(
            {"a": {**f32, "shape": [-1, -4], "data_offsets": [0, 16]}}, b"\0" * 16
        ),
        "shape-bool.safetensors": lambda: st(
            {"a": {**f32, "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4
        ),
        "surrogate-name.safetensors": lambda: (lambda b: struct.pack("<Q", len(b)) + b + b"\0" * 4)(
            b'{"w\\udc80": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
        ),
        "huge-metadata.safetensors": lambda: st(
            {
                "__metadata__": {"notes": "x" * (5 << 20)},
                "a": {**f32, "shape": [1], "data_offsets": [0, 4]},
            },
            b"\0" * 4,
        ),
        "deep-json.safetensors": lambda: (lambda b: struct.pack("<Q", len(b)) + b)(
            b"[" * 100_000 + b"]" * 100_000
        ),
        "claims-1e12.npz": lambda: npz_bytes({"w.npy": npy_member([10**12])}),
        "claims-2^64.npz": lambda: npz_bytes({"w.npy": npy_member([2**32, 2**32])}),
        "claims-negative.npz": lambda: npz_bytes({"w.npy": npy_member([-5])}),
        "claims-1e12-deflated.npz": lambda: npz_bytes(
            {"w.npy": npy_member([10**12])}, zipfile.ZIP_DEFLATED
        ),
        "object-array.npz": lambda: npz_bytes({"w.npy": npy_member([1], "|O", b"\x80\x02N.")}),
        "not-npy-member.npz": lambda: npz_bytes({"w.txt": b"hello"}),
        "zero-stride-giant.pt": lambda: torch_bytes({"w": _torch().zeros(1).expand(10**7, 10**7)}),
        "sparse.pt": lambda: torch_bytes({"w": _torch().eye(3).to_sparse()}),
        "meta.pt": lambda: torch_bytes({"w": _torch().empty(3, device="meta")}),
        "quantized.pt": lambda: torch_bytes(
            {"w": _torch().quantize_per_tensor(_torch().ones(3), 0.1, 0, _torch().quint8)}
        ),
    }
    return files


@pytest.mark.parametrize("name", sorted(hostile_files()))
def test_hostile_files_are_refused_by_the_reader(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(hostile_files()[name]())
    with pytest.raises(CoralError):
        load_weights(path)


@pytest.mark.parametrize("name", sorted(hostile_files()))
def test_hostile_files_are_refused_by_coral_import(
    repo: Repository, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(hostile_files()[name]())
    before = objects(repo)
    result = CliRunner().invoke(app, ["-C", str(repo.path), "import", str(path)])
    assert result.exit_code == 1, result.output
    assert result.output.lstrip().startswith("error:"), result.output
    assert "bug in Coral" not in result.output and "Traceback" not in result.output
    assert objects(repo) == before


def test_random_shape_claims_in_safetensors_headers(tmp_path: Path) -> None:
    """A header claiming any shape for the bytes it has: refused, or read exactly."""
    rng = random.Random(1414)
    path = tmp_path / "x.safetensors"
    for _ in range(trials(60)):
        shape = [rng.choice([*ABSURD_DIMS, 0, 1, 2, 3]) for _ in range(rng.randint(0, 4))]
        span = rng.choice([0, 4, 8, 12, 24])
        header = {"a": {"dtype": rng.choice(["F32", "F16", "U8"]), "shape": shape}}
        header["a"]["data_offsets"] = [0, span]
        path.write_bytes(safetensors_bytes(header, b"\x01" * span))
        try:
            arr = load_weights(path)["a"]
        except CoralError:
            continue
        assert list(arr.shape) == shape and arr.nbytes == span


def test_random_shape_claims_in_npz_headers(tmp_path: Path) -> None:
    """An .npy header claiming any shape for the bytes it has: refused before allocating, or
    read exactly."""
    rng = random.Random(4141)
    path = tmp_path / "x.npz"
    for _ in range(trials(60)):
        shape = [rng.choice([*ABSURD_DIMS, 0, 1, 2, 3]) for _ in range(rng.randint(0, 4))]
        held = rng.choice([0, 4, 8, 16, 24])
        path.write_bytes(npz_bytes({"a.npy": npy_member(shape, "<f4", b"\x01" * held)}))
        try:
            arr = load_weights(path)["a"]
        except CoralError:
            continue
        assert list(arr.shape) == shape and arr.nbytes <= held


def test_npz_still_round_trips_every_dtype(tmp_path: Path) -> None:
    """The bounded reader reads what the writer writes (Fortran order and big-endian too)."""
    import ml_dtypes

    from coral.integrations.formats import save_weights

    weights = {
        "f": np.arange(12, dtype=np.float32).reshape(3, 4),
        "bf": np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16),
        "empty": np.zeros((0, 3), np.float16),
        "scalar": np.array(7, np.int64),
    }
    save_weights(weights, tmp_path / "w.npz")
    back = load_weights(tmp_path / "w.npz")
    for name, want in weights.items():
        assert back[name].dtype == want.dtype and back[name].tobytes() == want.tobytes()
    np.savez_compressed(
        tmp_path / "f.npz",
        fo=np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        be=np.arange(3, dtype=">i4"),
    )
    back = load_weights(tmp_path / "f.npz")
    assert back["fo"].tolist() == np.arange(6.0).reshape(2, 3).tolist()
    assert back["be"].tolist() == [0, 1, 2]
    with pytest.raises(InvalidFileError):
        (tmp_path / "t.npz").write_bytes((tmp_path / "w.npz").read_bytes()[:-40])
        load_weights(tmp_path / "t.npz")
