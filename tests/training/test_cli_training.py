"""The training commands: `coral checkpoints`, `coral import-onnx`, `coral export-onnx`."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from coral.cli.main import app
from coral.training import CheckpointConfig, CheckpointManager
from tests.training.torch_models import make_run, train_step

onnx = pytest.importorskip("onnx")


def _run(repo, *args: str):
    result = CliRunner().invoke(app, ["-C", str(repo.path), *args])
    return result


def test_checkpoints_lists_kept_and_pruned(repo):
    model, opt, sched = make_run()
    cfg = CheckpointConfig(every_n_steps=1, keep_last_n=2, async_commit=False)
    with CheckpointManager(repo, model, opt, sched, cfg) as mgr:
        for step in range(1, 5):
            train_step(model, opt, sched)
            mgr.step(step, metrics={"loss": 1.0 / step})
    result = _run(repo, "checkpoints", "--json")
    assert result.exit_code == 0, result.output
    assert [c["step"] for c in json.loads(result.stdout)] == [3, 4]
    result = _run(repo, "checkpoints", "--all", "--json")
    rows = json.loads(result.stdout)
    assert [(c["step"], c["pruned"]) for c in rows] == [
        (1, True),
        (2, True),
        (3, False),
        (4, False),
    ]
    table = _run(repo, "checkpoints")
    assert table.exit_code == 0 and "loss=0.25" in table.stdout


def test_import_onnx_then_export_onnx_round_trip(repo, tmp_path):
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)
    ).eval()
    template = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, 5),), str(template), dynamo=False, do_constant_folding=False
        )
    result = _run(repo, "import-onnx", str(template), "-m", "from onnx", "--json")
    assert result.exit_code == 0, result.output
    commit = json.loads(result.stdout)["commit_hash"]
    weights = repo.get_all_weights(commit)
    for name, t in model.state_dict().items():
        assert weights[name].data.tobytes() == t.numpy().tobytes()

    out = tmp_path / "again.onnx"
    result = _run(
        repo, "export-onnx", commit, str(out), "--template", str(template), "--strict", "--json"
    )
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["replaced"]) == sorted(model.state_dict())
    from coral.integrations.onnx_io import load_onnx_initializers

    assert {k: v.tobytes() for k, v in load_onnx_initializers(out).items()} == {
        k: t.numpy().tobytes() for k, t in model.state_dict().items()
    }


def test_import_tensorflow_refuses_what_is_not_tensorflow(repo, tmp_path):
    (tmp_path / "x.bin").write_bytes(np.zeros(3).tobytes())
    result = _run(repo, "import-tensorflow", str(tmp_path / "x.bin"))
    assert result.exit_code == 1
    assert "neither a SavedModel" in result.stderr and "hint:" in result.stderr
