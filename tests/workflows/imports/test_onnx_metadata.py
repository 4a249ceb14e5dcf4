"""`coral export-onnx` records the commit and its history in the model's metadata and checks
every tensor against the graph first; `coral import-onnx` records who made the model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.workflows.imports.conftest import run_coral

onnx = pytest.importorskip("onnx")

from coral.integrations.onnx_io import onnx_metadata  # noqa: E402


def _template(model: torch.nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 5),),
            str(path),
            dynamo=False,
            do_constant_folding=False,
        )


def _model(width: int = 4) -> torch.nn.Module:
    torch.manual_seed(width)
    return torch.nn.Sequential(
        torch.nn.Linear(5, width), torch.nn.ReLU(), torch.nn.Linear(width, 2)
    )


def test_import_records_producer_and_export_records_history(coral, repo_path, tmp_path):
    template = tmp_path / "m.onnx"
    _template(_model(), template)
    result = coral("import-onnx", str(template), "-m", "from onnx", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["onnx"]
    assert info["producer"] == "pytorch" and info["opsets"]["ai.onnx"] > 0
    with Repository(repo_path) as repo:
        first = json.loads(result.stdout)["commit_hash"]
        recorded = repo.read_commit(first).metadata["import"]["onnx"]
        assert recorded["producer"] == "pytorch" and recorded["ir_version"] > 0
        for step in range(3):  # three fine-tunes of the same graph
            sd = {k: v + (step + 1) / 100 for k, v in _model().state_dict().items()}
            repo.add_all_weights({k: v.numpy() for k, v in sd.items()})
            repo.commit(f"tune {step}\n\nlonger body")
        head = repo.head_commit()
        log = [(c.commit_hash, c.message.splitlines()[0]) for c in repo.log(max_commits=2)]

    out = tmp_path / "out.onnx"
    result = coral(
        "export-onnx", "main", str(out), "--template", str(template), "--history", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    meta = onnx_metadata(out)
    assert meta["coral.commit"] == head and meta["coral.ref"] == "main"
    assert meta["coral.message"] == "tune 2"
    history = json.loads(meta["coral.history"])
    assert [(h["commit"], h["message"]) for h in history] == log

    # Coral's own export, imported elsewhere, keeps the record of where it came from
    Repository.init(tmp_path / "elsewhere").close()
    proc = run_coral(tmp_path / "elsewhere", "import-onnx", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    with Repository(tmp_path / "elsewhere") as repo:
        recorded = repo.get_commit("HEAD").metadata["import"]["onnx"]["metadata"]
        assert recorded["coral.commit"] == head
    # the same tensors as HEAD again: nothing to commit, one error and a hint
    assert_user_error(coral("import-onnx", str(out)), "nothing to commit")


def test_export_refuses_a_mismatched_tensor_before_writing(coral, repo_path, tmp_path):
    template = tmp_path / "narrow.onnx"
    _template(_model(4), template)
    with Repository(repo_path) as repo:
        repo.add_all_weights({k: v.numpy() for k, v in _model(6).state_dict().items()})
        repo.commit("wide")
    out = tmp_path / "out.onnx"
    result = coral("export-onnx", "HEAD", str(out), "--template", str(template))
    assert_user_error(result, "tensor '0.weight'", "float32[6, 5]", "float32[4, 5]", "more")
    assert "nothing was written" in result.stderr
    assert not out.exists()


def test_import_onnx_as_a_real_process_shows_the_producer(repo_path, tmp_path):
    template = tmp_path / "m.onnx"
    _template(_model(), template)
    proc = run_coral(repo_path, "import-onnx", str(template))
    assert proc.returncode == 0, proc.stderr
    assert "made by pytorch" in proc.stdout
    assert all(len(line) <= 80 for line in proc.stdout.splitlines())


def test_export_onnx_without_a_template_fills_the_imported_graph(coral, repo_path, tmp_path):
    import numpy as np
    import onnxruntime as ort

    from coral.integrations.onnx_io import GRAPH_FILE, load_onnx_initializers

    source = tmp_path / "m.onnx"
    _template(_model(), source)
    assert coral("import", "onnx", str(source)).exit_code == 0  # the two-word spelling
    tuned = _model()
    with torch.no_grad():
        for p in tuned.parameters():
            p += 0.5
    with Repository(repo_path) as repo:
        assert GRAPH_FILE in repo.list_files("HEAD")  # the graph, initializers emptied
        assert repo.get_files("HEAD")[GRAPH_FILE].__len__() < source.stat().st_size
        repo.add_all_weights({k: v.numpy() for k, v in tuned.state_dict().items()})
        repo.commit("tuned")

    out = tmp_path / "out.onnx"
    result = coral("export", "onnx", "HEAD", str(out))
    assert result.exit_code == 0, result.output
    exported = load_onnx_initializers(out)
    for name, value in tuned.state_dict().items():
        assert exported[name].tobytes() == value.numpy().tobytes()  # bit-exact
    x = np.random.default_rng(0).standard_normal((1, 5)).astype(np.float32)
    session = ort.InferenceSession(str(out))
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(y, tuned(torch.from_numpy(x)).detach().numpy(), rtol=1e-5)
    assert onnx_metadata(out)["coral.message"] == "tuned"

    # a commit that never came from ONNX has no graph to fill: one error, a hint, no file
    with Repository(repo_path) as repo:
        repo.remove_file(GRAPH_FILE)
        repo.commit("graph removed")
    missing = tmp_path / "none.onnx"
    result = coral("export", "onnx", "HEAD", str(missing))
    assert_user_error(result, "no ONNX graph")
    assert "--template" in result.stderr and not missing.exists()
