"""Checkpoint formats round-trip every dtype bit-exact and interoperate with their libraries."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from coral.core.weight_tensor import WeightTensor
from coral.errors import CoralError, UnsupportedDtypeError
from coral.integrations.formats import detect_format, load_checkpoint, load_weights, save_weights


def _special_floats(dtype: np.dtype) -> np.ndarray:
    """Values that lossy paths get wrong: -0.0, inf, NaN with payloads, subnormals."""
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]
    bits = {
        np.uint16: [0x8000, 0x7C01, 0x7E55, 0x0001, 0xFC00],
        np.uint32: [0x80000000, 0x7F800001, 0x7FC0BEEF, 0x00000001, 0xFF800000],
        np.uint64: [
            0x8000000000000000,
            0x7FF0000000000001,
            0x7FF8DEADBEEF0000,
            1,
            0xFFF0000000000000,
        ],
    }[width]
    return np.array(bits, dtype=width).view(dtype)


def sample_weights() -> dict[str, np.ndarray]:
    """One tensor per dtype safetensors knows, plus 0-d, empty and special values."""
    rng = np.random.default_rng(0)
    w: dict[str, np.ndarray] = {
        "layer.0.weight": rng.standard_normal((16, 8)).astype(np.float32),
        "layer.0.bias": rng.standard_normal(8).astype(np.float64),
        "half": rng.standard_normal((4, 4)).astype(np.float16),
        "bf16": rng.standard_normal((3, 5)).astype(ml_dtypes.bfloat16),
        "f8_e4m3": rng.standard_normal(7).astype(ml_dtypes.float8_e4m3fn),
        "f8_e5m2": rng.standard_normal(7).astype(ml_dtypes.float8_e5m2),
        "i64": rng.integers(-(2**62), 2**62, 9, dtype=np.int64),
        "i32": rng.integers(-(2**31), 2**31 - 1, 9, dtype=np.int32),
        "i16": rng.integers(-(2**15), 2**15 - 1, 9, dtype=np.int16),
        "i8": rng.integers(-128, 127, 9, dtype=np.int8),
        "u8": rng.integers(0, 255, 9, dtype=np.uint8),
        "mask": rng.random((2, 3)) > 0.5,
        "scalar": np.array(3.25, dtype=np.float32),
        "scalar_bf16": np.array(1.5, dtype=ml_dtypes.bfloat16),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "special32": _special_floats(np.float32),
        "special64": _special_floats(np.float64),
        "special_bf16": _special_floats(ml_dtypes.bfloat16),
    }
    return w


def assert_bit_exact(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, arr in want.items():
        assert got[name].dtype == arr.dtype, name
        assert got[name].shape == arr.shape, name
        assert got[name].tobytes() == arr.tobytes(), name


@pytest.mark.parametrize("target", ["w.safetensors", "w.pt", "w.bin", "w.npz", "hf-folder"])
def test_round_trip_bit_exact(tmp_path: Path, target: str) -> None:
    w = sample_weights()
    files = save_weights(w, tmp_path / target)
    assert all(f.exists() for f in files)
    assert_bit_exact(load_weights(tmp_path / target), w)


def test_dtypes_outside_safetensors_round_trip_in_pt_and_npz(tmp_path: Path) -> None:
    w = {
        "c128": np.array([1 + 2j, -0.0 - 1j]),
        "u16": np.arange(5, dtype=np.uint16),
        "u32": np.arange(5, dtype=np.uint32),
        "u64": np.array([2**63 + 5], dtype=np.uint64),
        "fnuz": np.arange(3).astype(ml_dtypes.float8_e4m3fnuz),
    }
    for target in ("w.pt", "w.npz"):
        save_weights(w, tmp_path / target)
        assert_bit_exact(load_weights(tmp_path / target), w)
    with pytest.raises(UnsupportedDtypeError):
        save_weights({"c": w["c128"]}, tmp_path / "w.safetensors")


def test_accepts_weight_tensors_and_torch_tensors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_weights(
        {"a": WeightTensor(arr, name="a"), "b": torch.ones(2, dtype=torch.bfloat16)},
        tmp_path / "m.safetensors",
    )
    got = load_weights(tmp_path / "m.safetensors")
    assert got["a"].tobytes() == arr.tobytes()
    assert got["b"].dtype == ml_dtypes.bfloat16 and got["b"].tolist() == [1.0, 1.0]


def test_safetensors_interoperates_with_the_library(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import safetensors.numpy
    import safetensors.torch

    w = sample_weights()
    save_weights(w, tmp_path / "ours.safetensors", metadata={"step": 3, "note": "x"})
    theirs = safetensors.torch.load_file(str(tmp_path / "ours.safetensors"))
    assert theirs["bf16"].dtype == torch.bfloat16
    assert theirs["bf16"].view(torch.int16).numpy().tobytes() == w["bf16"].tobytes()
    assert theirs["scalar"].shape == ()
    plain = {k: v for k, v in w.items() if v.dtype.type.__module__ == "numpy"}
    save_weights(plain, tmp_path / "plain.safetensors")
    assert_bit_exact(safetensors.numpy.load_file(str(tmp_path / "plain.safetensors")), plain)

    from coral.integrations.torch_convert import numpy_to_torch

    safetensors.torch.save_file(
        {k: numpy_to_torch(v) for k, v in w.items()},
        str(tmp_path / "lib.safetensors"),
        metadata={"format": "pt"},
    )
    ckpt = load_checkpoint(tmp_path / "lib.safetensors")
    assert_bit_exact(ckpt.weights, w)
    assert ckpt.metadata == {"format": "pt"}
    assert load_checkpoint(tmp_path / "ours.safetensors").metadata == {"step": "3", "note": "x"}


def test_safetensors_layout_is_aligned(tmp_path: Path) -> None:
    w = {"a8": np.ones(3, np.int8), "f64": np.ones(3), "f32": np.ones(3, np.float32)}
    save_weights(w, tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8 : 8 + n])
    for name, info in header.items():
        assert info["data_offsets"][0] % w[name].dtype.itemsize == 0


def test_sharding_follows_hugging_face_naming(tmp_path: Path) -> None:
    w = {f"layer.{i}.weight": np.full((10, 10), i, np.float32) for i in range(5)}  # 400 B each
    w["big"] = np.zeros(500, np.float32)  # 2000 B: larger than a shard, gets its own
    files = save_weights(w, tmp_path / "model.safetensors", max_shard_bytes=1000)
    names = [f.name for f in files]
    assert names == [
        "model-00001-of-00004.safetensors",
        "model-00002-of-00004.safetensors",
        "model-00003-of-00004.safetensors",
        "model-00004-of-00004.safetensors",
        "model.safetensors.index.json",
    ]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in w.values())
    assert index["weight_map"]["big"] == "model-00004-of-00004.safetensors"
    assert index["weight_map"]["layer.0.weight"] == "model-00001-of-00004.safetensors"
    assert not (tmp_path / "model.safetensors").exists()
    assert_bit_exact(load_weights(tmp_path / "model.safetensors.index.json"), w)
    assert_bit_exact(load_weights(tmp_path), w)  # the folder finds its index


def test_small_output_is_not_sharded(tmp_path: Path) -> None:
    files = save_weights({"a": np.ones(3)}, tmp_path / "m.safetensors", max_shard_bytes=10**9)
    assert [f.name for f in files] == ["m.safetensors"]


def test_hf_folder_keeps_config_as_metadata(tmp_path: Path) -> None:
    w = sample_weights()
    config = {"model_type": "mlp", "hidden_size": 16}
    files = save_weights(
        w, tmp_path / "hf", format="hf", metadata={"config": config}, max_shard_bytes=300
    )
    assert (tmp_path / "hf" / "config.json") in files
    assert (tmp_path / "hf" / "model.safetensors.index.json") in files
    ckpt = load_checkpoint(tmp_path / "hf")
    assert ckpt.format == "hf"
    assert ckpt.metadata["config"] == config
    assert_bit_exact(ckpt.weights, w)


def test_hf_folder_with_pytorch_model_bin(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from coral.integrations.torch_convert import numpy_to_torch

    w = sample_weights()
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "x"}))
    torch.save({k: numpy_to_torch(v) for k, v in w.items()}, folder / "pytorch_model.bin")
    ckpt = load_checkpoint(folder)
    assert ckpt.metadata["config"] == {"model_type": "x"}
    assert_bit_exact(ckpt.weights, w)


def test_hf_folder_with_sharded_pytorch_bins(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    folder = tmp_path / "bins"
    folder.mkdir()
    torch.save({"a": torch.ones(2)}, folder / "pytorch_model-00001-of-00002.bin")
    torch.save(
        {"b": torch.zeros(3, dtype=torch.bfloat16)}, folder / "pytorch_model-00002-of-00002.bin"
    )
    index = {
        "metadata": {"total_size": 14},
        "weight_map": {
            "a": "pytorch_model-00001-of-00002.bin",
            "b": "pytorch_model-00002-of-00002.bin",
        },
    }
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    got = load_weights(folder)
    assert got["a"].tolist() == [1.0, 1.0] and got["b"].dtype == ml_dtypes.bfloat16


def test_pt_nested_state_is_flattened_and_scalars_become_metadata(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    ckpt = {
        "epoch": 4,
        "state_dict": {"encoder": {"weight": torch.ones(2, 2)}, "head.bias": torch.zeros(2)},
        "optimizer": {
            "state": {0: {"exp_avg": torch.full((2,), 0.5)}},
            "param_groups": [{"lr": 0.1}],
        },
        "hparams": {"name": "mlp"},
    }
    torch.save(ckpt, tmp_path / "lightning.ckpt")
    got = load_checkpoint(tmp_path / "lightning.ckpt")
    assert set(got.weights) == {
        "state_dict.encoder.weight",
        "state_dict.head.bias",
        "optimizer.state.0.exp_avg",
    }
    assert got.metadata["epoch"] == 4
    assert got.metadata["hparams.name"] == "mlp"


def test_detect_format() -> None:
    assert detect_format("a/model.safetensors") == "safetensors"
    assert detect_format("a/model.safetensors.index.json") == "sharded"
    assert detect_format("a/pytorch_model.bin") == "pt"
    assert detect_format("x.PTH") == "pt"
    assert detect_format("x.npz") == "npz"
    assert detect_format("exported-model") == "hf"


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(CoralError, match="unknown checkpoint format"):
        load_weights(tmp_path / "w.h5")
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "missing.safetensors")
    with pytest.raises(CoralError, match="cannot shard"):
        save_weights({"a": np.ones(1)}, tmp_path / "a.npz", max_shard_bytes=10)
    with pytest.raises(CoralError, match="does not write"):
        save_weights({"a": np.ones(1)}, tmp_path / "a.npz", format="onnx")
    with pytest.raises(CoralError, match="unknown format"):
        save_weights({"a": np.ones(1)}, tmp_path / "a.npz", format="h5")


def test_framework_files_are_read_through_the_same_dispatch(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(weight, "w")],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert detect_format(path) == "onnx"
    assert load_weights(path)["w"].tobytes() == weight.tobytes()
