"""Hostile and damaged checkpoint files: refused with a clear CoralError, nothing executed."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from coral.errors import InvalidFileError, InvalidNameError, UnsafeFileError, UnsupportedDtypeError
from coral.integrations.formats import load_weights, save_weights


def _safetensors_bytes(header: dict, data: bytes) -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what a malicious checkpoint does
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_in_pt_is_refused_and_not_executed(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    torch.save({"weight": torch.ones(2), "payload": _RunsShell(marker)}, tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(UnsafeFileError) as err:
        load_weights(tmp_path / "evil.pt")
    assert "system" in err.value.message
    assert err.value.hint and "safetensors" in err.value.hint
    assert not marker.exists()


def test_malicious_raw_pickle_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    (tmp_path / "evil.bin").write_bytes(pickle.dumps({"w": _RunsShell(marker)}, protocol=2))
    with pytest.raises(UnsafeFileError):
        load_weights(tmp_path / "evil.bin")
    assert not marker.exists()


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    obj = np.empty(1, dtype=object)
    obj[0] = _RunsShell(marker)
    np.savez(tmp_path / "evil.npz", w=obj)
    with pytest.raises(InvalidFileError, match="pickled"):
        load_weights(tmp_path / "evil.npz")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".npz"])
def test_truncated_files_are_invalid(tmp_path: Path, suffix: str) -> None:
    if suffix == ".pt":
        pytest.importorskip("torch")
    good = tmp_path / f"good{suffix}"
    save_weights({"a": np.arange(1000, dtype=np.float32), "b": np.ones(7)}, good)
    raw = good.read_bytes()
    for cut in (0, 4, 9, len(raw) // 2, len(raw) - 1):
        bad = tmp_path / f"bad{suffix}"
        bad.write_bytes(raw[:cut])
        with pytest.raises(InvalidFileError):
            load_weights(bad)


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "truncated"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, "data_offsets"),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "shape"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "overlap",
        ),
        ({"a": "not an object"}, b"", "not an object"),
        ({"__metadata__": [1]}, b"", "__metadata__"),
    ],
)
def test_inconsistent_safetensors_headers(
    tmp_path: Path, header: dict, data: bytes, match: str
) -> None:
    (tmp_path / "x.safetensors").write_bytes(_safetensors_bytes(header, data))
    with pytest.raises(InvalidFileError, match=match):
        load_weights(tmp_path / "x.safetensors")


def test_unknown_safetensors_dtype(tmp_path: Path) -> None:
    header = {"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}}
    (tmp_path / "x.safetensors").write_bytes(_safetensors_bytes(header, b"\0"))
    with pytest.raises(UnsupportedDtypeError):
        load_weights(tmp_path / "x.safetensors")


def test_huge_or_garbage_header(tmp_path: Path) -> None:
    (tmp_path / "x.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")
    with pytest.raises(InvalidFileError, match="too large"):
        load_weights(tmp_path / "x.safetensors")
    (tmp_path / "y.safetensors").write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{[")
    with pytest.raises(InvalidFileError, match="JSON"):
        load_weights(tmp_path / "y.safetensors")


@pytest.mark.parametrize(
    "shard", ["../outside.safetensors", "/etc/passwd", "sub/x.safetensors", ".."]
)
def test_index_naming_files_outside_its_folder_is_unsafe(tmp_path: Path, shard: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    save_weights({"a": np.ones(2)}, tmp_path / "outside.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shard}}))
    with pytest.raises(UnsafeFileError):
        load_weights(folder)


def test_index_and_shards_must_agree(tmp_path: Path) -> None:
    save_weights({"a": np.ones(2), "b": np.ones(2)}, tmp_path / "s.safetensors")
    index = tmp_path / "m.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a": "s.safetensors", "c": "s.safetensors"}}))
    with pytest.raises(InvalidFileError, match="'c' is not in shard"):
        load_weights(index)
    index.write_text(json.dumps({"weight_map": {"a": "s.safetensors"}}))
    with pytest.raises(InvalidFileError, match="not in the index"):
        load_weights(index)
    index.write_text(json.dumps({"weight_map": {"a": "missing.safetensors"}}))
    with pytest.raises(InvalidFileError, match="missing"):
        load_weights(index)
    index.write_text("{not json")
    with pytest.raises(InvalidFileError):
        load_weights(index)


@pytest.mark.parametrize("name", ["", "bad\x00name", "tab\tname", "new\nline"])
def test_unsafe_tensor_names(tmp_path: Path, name: str) -> None:
    header = {name: {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    (tmp_path / "x.safetensors").write_bytes(_safetensors_bytes(header, b"\0"))
    with pytest.raises((InvalidFileError, InvalidNameError)):
        load_weights(tmp_path / "x.safetensors")
    with pytest.raises((InvalidFileError, InvalidNameError)):
        save_weights({name: np.ones(1)}, tmp_path / "y.safetensors")


def test_npz_member_names_are_only_keys(tmp_path: Path) -> None:
    """Zip member names like '../x' are keys, never paths: nothing is written outside."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, zf.open("../escape.npy", "w") as member:
        np.lib.format.write_array(member, np.ones(2))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.npz").write_bytes(buf.getvalue())
    got = load_weights(tmp_path / "sub" / "x.npz")
    assert list(got) == ["../escape"]
    assert not (tmp_path / "escape.npy").exists()


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "m.safetensors"
    with pytest.raises(UnsupportedDtypeError):
        save_weights({"a": np.ones(2), "c": np.ones(2, dtype=np.complex128)}, target)
    assert list(tmp_path.iterdir()) == []
