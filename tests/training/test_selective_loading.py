"""Partial checkout into a model: `get_all_weights(ref, layers=..., lazy=True)` and
`load_into_model`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coral.errors import CoralError, ShapeMismatchError
from coral.integrations.pytorch import LoadReport, load_into_model, model_to_weights
from tests.training.torch_models import TinyLM


def _commit(repo, model) -> str:
    repo.add_all_weights(model_to_weights(model))
    return repo.commit("model")


def test_partial_checkout_loads_only_the_selected_layers_lazily(repo):
    torch.manual_seed(0)
    source = TinyLM()
    commit = _commit(repo, source)
    torch.manual_seed(1)
    target = TinyLM()
    before = {k: v.clone() for k, v in target.state_dict().items()}

    selected = repo.get_all_weights(commit, layers="encoder.*", lazy=True)
    assert selected and all(not w.is_loaded for w in selected.values())
    report = load_into_model(target, selected)
    assert isinstance(report, LoadReport)
    assert report.loaded == sorted(n for n in source.state_dict() if n.startswith("encoder."))
    assert report.unexpected == [] and report.mismatched == []
    assert set(report.missing) == {n for n in target.state_dict() if not n.startswith("encoder.")}
    after = target.state_dict()
    for name in after:
        expected = source.state_dict()[name] if name.startswith("encoder.") else before[name]
        assert torch.equal(after[name], expected), name


def test_tied_weights_fill_through_either_name(repo):
    torch.manual_seed(0)
    source = TinyLM()
    commit = _commit(repo, source)  # stores embed.weight only (head.weight is the same tensor)
    assert "head.weight" not in repo.list_weights(commit)
    target = TinyLM()
    report = load_into_model(target, repo.get_all_weights(commit), strict=True)
    assert report.ok
    assert torch.equal(target.head.weight, source.embed.weight)
    assert target.head.weight.data_ptr() == target.embed.weight.data_ptr()


def test_mismatched_shapes_and_dtypes_are_reported_not_loaded(repo):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    weights = {
        "0.weight": np.ones((3, 4), np.float32),
        "0.bias": np.ones(5, np.float32),  # wrong shape
        "1.weight": np.ones((2, 3), np.float64),  # wrong dtype
        "2.weight": np.ones(1, np.float32),  # not in the model
        "__optim__/0/state/0/exp_avg": np.ones(1, np.float32),  # training state: ignored
    }
    report = load_into_model(model, weights)
    assert report.loaded == ["0.weight"]
    assert [m[0] for m in report.mismatched] == ["0.bias", "1.weight"]
    assert report.mismatched[0][1:] == ("float32[3]", "float32[5]")
    assert report.unexpected == ["2.weight"]
    assert report.missing == ["0.bias", "1.weight", "1.bias"]
    assert torch.equal(model[0].weight, torch.ones(3, 4))
    with pytest.raises(ShapeMismatchError):
        load_into_model(model, weights, strict=True)
    with pytest.raises(CoralError):
        load_into_model(model, {"0.weight": np.zeros((3, 4), np.float32)}, strict=True)
    assert torch.equal(model[0].weight, torch.ones(3, 4))  # strict failures load nothing


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_round_trips_onto_its_device(repo):
    from coral.integrations.pytorch import PyTorchIntegration
    from coral.training import TrainingState

    torch.manual_seed(0)
    model = TinyLM().cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randint(0, 16, (32,), device="cuda")
    loss = torch.nn.functional.cross_entropy(model(x), x)
    loss.backward()
    opt.step()
    commit = PyTorchIntegration(model, opt).save(repo, "cuda", TrainingState.capture(step=1))
    assert "__rng__/cuda/0" in repo.list_weights(commit)
    target = TinyLM().cuda()
    opt2 = torch.optim.Adam(target.parameters(), lr=1e-2)
    PyTorchIntegration(target, opt2).load(repo, commit)
    for name, t in model.state_dict().items():
        assert target.state_dict()[name].device.type == "cuda"
        assert torch.equal(t, target.state_dict()[name]), name
    state = opt2.state_dict()["state"][0]
    assert state["exp_avg"].device.type == "cuda"
    assert torch.equal(state["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
