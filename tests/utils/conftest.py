"""Real fine-tuned weights for the visualization tests, committed into a real repository.

A 3-layer MLP is trained on synthetic data ("pretrained"), then a copy is fine-tuned on a
different target with its first layer frozen and its head re-initialised. The chapter 8.4 refs
are tags on commits of those weights.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the visualization tests train a small torch model")

from coral.integrations.torch_convert import torch_to_numpy  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "utils"

FROZEN = ["0.weight", "0.bias"]  # first Linear: frozen during fine-tuning
HEAD = ["4.weight", "4.bias"]  # last Linear: re-initialised before fine-tuning
MIDDLE = ["2.weight", "2.bias"]  # trained further


def _mlp() -> Any:
    return torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 4),
    )


def _train(model: Any, x: Any, y: Any, steps: int, lr: float) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()


def _numpy_state(model: Any) -> dict[str, np.ndarray]:
    return {k: torch_to_numpy(v) for k, v in model.state_dict().items()}


def _quantize_int8(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Symmetric per-tensor int8 quantization of every tensor (what an int8 export stores)."""
    out = {}
    for name, w in weights.items():
        scale = float(np.abs(w).max()) / 127.0 or 1.0
        out[name] = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    return out


@pytest.fixture(scope="session")
def trained() -> dict[str, dict[str, np.ndarray]]:
    """name -> state dict (numpy): base, finetuned, transfer_init, quantized."""
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = torch.sin(2.0 * x[:, :4])
    base_model = _mlp()
    _train(base_model, x, y, steps=80, lr=1e-2)
    base = _numpy_state(base_model)

    # Transfer learning: copy the body, new randomly initialised head, no training yet.
    init_model = copy.deepcopy(base_model)
    init_model[4].reset_parameters()
    transfer_init = _numpy_state(init_model)

    # Fine-tuning: first layer frozen, head re-initialised, trained on a new target.
    ft_model = copy.deepcopy(base_model)
    for p in ft_model[0].parameters():
        p.requires_grad_(False)
    ft_model[4].reset_parameters()
    y2 = torch.cos(x[:, 4:8])
    _train(ft_model, x, y2, steps=30, lr=1e-3)
    finetuned = _numpy_state(ft_model)

    return {
        "base": base,
        "finetuned": finetuned,
        "transfer_init": transfer_init,
        "quantized": _quantize_int8(base),
    }


@pytest.fixture(scope="module")
def repo(
    tmp_path_factory: pytest.TempPathFactory, trained: dict[str, dict[str, np.ndarray]]
) -> Any:
    """A real repository whose tags are the refs chapter 8.4's examples use (tests only read)."""
    from coral.version_control.repository import Repository

    repository = Repository.init(tmp_path_factory.mktemp("viz") / "repo")
    plan = [
        ("base", "pretrained MLP", ["base-model", "pretrained-base", "imagenet-pretrained",
                                    "float32-model"]),
        ("finetuned", "fine-tune: first layer frozen, new head", ["finetuned-v1",
                                                                  "finetuned-epoch-5"]),
        ("transfer_init", "transfer: pretrained body, random head", ["custom-dataset-init"]),
        ("quantized", "int8 quantized export", ["int8-quantized"]),
    ]
    for key, message, tags in plan:
        repository.add_all_weights(trained[key])
        repository.commit(message)
        for tag in tags:
            repository.tag_version(tag)
    yield repository
    close = getattr(repository, "close", None)
    if close is not None:
        close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
