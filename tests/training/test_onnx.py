"""ONNX: initializers import bit-exact (bfloat16 and float8 included); a commit exported into a
torch-exported graph runs in onnxruntime with torch's outputs and bit-equal initializers."""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from coral.errors import CoralError, ShapeMismatchError  # noqa: E402
from coral.integrations.onnx_io import (  # noqa: E402
    export_onnx,
    import_onnx,
    load_onnx_initializers,
    onnx_metadata,
)
from coral.integrations.pytorch import PyTorchIntegration  # noqa: E402
from coral.training import TrainingState  # noqa: E402
from tests.training.torch_models import make_run, train_step  # noqa: E402


def _export_template(model: torch.nn.Module, path, x: torch.Tensor) -> None:
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            do_constant_folding=False,
            input_names=["tokens"],
            output_names=["logits"],
        )


def test_export_commit_into_torch_graph_matches_torch(repo, tmp_path):
    model, opt, sched = make_run()
    x = torch.arange(16) % 16
    template = tmp_path / "template.onnx"
    _export_template(model, template, x)  # from the untrained model
    for _ in range(6):
        train_step(model, opt, sched)  # weights and BatchNorm statistics move on
    commit = PyTorchIntegration(model, opt, sched).save(repo, "trained", TrainingState(step=6))

    out = tmp_path / "exported.onnx"
    report = export_onnx(repo, commit, template, out)
    assert "embed.weight" in report.replaced and "norm.running_var" in report.replaced
    assert report.kept == []
    assert onnx_metadata(out)["coral.commit"] == commit

    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(
        None, {"tokens": x.numpy()}
    )[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    stored = repo.get_all_weights(commit)
    for name, arr in load_onnx_initializers(out).items():
        assert arr.tobytes() == stored[name].data.tobytes() and arr.dtype == stored[name].dtype, (
            name
        )
    # the template the old weights came from really differed
    old = ort.InferenceSession(str(template), providers=["CPUExecutionProvider"]).run(
        None, {"tokens": x.numpy()}
    )[0]
    assert not np.allclose(old, expected)


def test_export_refuses_mismatched_shapes_and_strict_reports_gaps(repo, tmp_path):
    small = torch.nn.Sequential(torch.nn.Linear(4, 3))
    template = tmp_path / "t.onnx"
    _export_template(small, template, torch.zeros(2, 4))
    repo.add_all_weights(
        {"0.weight": np.zeros((3, 5), np.float32), "0.bias": np.zeros(3, np.float32)}
    )
    bad = repo.commit("wrong shapes")
    with pytest.raises(ShapeMismatchError):
        export_onnx(repo, bad, template, tmp_path / "o.onnx")
    repo.add_all_weights({"0.weight": np.ones((3, 4), np.float32), "extra": np.ones(2, np.float32)})
    repo.remove_weight("0.bias")
    partial = repo.commit("partial")
    report = export_onnx(repo, partial, template, tmp_path / "o.onnx")
    assert (
        report.replaced == ["0.weight"] and report.kept == ["0.bias"] and report.unused == ["extra"]
    )
    with pytest.raises(CoralError):
        export_onnx(repo, partial, template, tmp_path / "o2.onnx", strict=True)


def _graph_with(initializers: dict[str, np.ndarray]):
    inits = [numpy_helper.from_array(a, n) for n, a in initializers.items()]
    outs = [
        helper.make_tensor_value_info(f"out_{n}", helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in initializers.items()
    ]
    nodes = [helper.make_node("Identity", [n], [f"out_{n}"]) for n in initializers]
    return helper.make_model(
        helper.make_graph(nodes, "g", [], outs, initializer=inits),
        opset_imports=[helper.make_opsetid("", 21)],
    )


def test_initializers_round_trip_bit_exact_every_dtype(repo, tmp_path):
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.14], dtype=np.float32)
    weights = {
        "f32": special,
        "f16": special.astype(np.float16),
        "bf16": special.astype(ml_dtypes.bfloat16),
        "f8": np.array([0.5, -2.0, 448.0], dtype=ml_dtypes.float8_e4m3fn),
        "i64": np.array([[-(2**62), 7]], dtype=np.int64),
        "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "flag": np.array([True, False]),
        "scalar": np.array(2.5, dtype=np.float64),
    }
    weights["f32"].view(np.uint32)[4] = 0x7FC0_1234  # a NaN payload
    path = tmp_path / "all.onnx"
    onnx.save(_graph_with(weights), str(path))
    loaded = load_onnx_initializers(path)
    assert loaded.keys() == weights.keys()
    for name, arr in weights.items():
        assert loaded[name].dtype == arr.dtype and loaded[name].tobytes() == arr.tobytes(), name

    commit = import_onnx(repo, path)
    back = repo.get_all_weights(commit)
    for name, arr in weights.items():
        assert back[name].data.tobytes() == arr.tobytes(), name
    assert repo.get_commit(commit).metadata["import"]["format"] == "onnx"
    # and out again into the same graph: bit-equal
    export_onnx(repo, commit, path, tmp_path / "again.onnx", strict=True)
    again = load_onnx_initializers(tmp_path / "again.onnx")
    assert {k: v.tobytes() for k, v in again.items()} == {
        k: v.tobytes() for k, v in weights.items()
    }


def test_bad_onnx_file_is_a_clear_error(tmp_path):
    from coral.errors import InvalidFileError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf model" * 3)
    with pytest.raises(InvalidFileError):
        load_onnx_initializers(bad)


def test_tensor_proto_dtype_constants_are_stable():
    assert TensorProto.BFLOAT16 == 16  # the numbers ONNX files store
