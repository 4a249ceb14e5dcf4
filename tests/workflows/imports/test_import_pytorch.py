"""`coral import-pytorch`: state dicts, training checkpoints and Lightning `.ckpt` files become
training checkpoint commits; pickles that would run code are refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from coral.errors import InvalidFileError, NothingToCommitError
from coral.integrations.pytorch import PyTorchIntegration
from coral.porcelain.import_pytorch import import_pytorch, read_torch_checkpoint
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.workflows.imports.conftest import run_coral


def _trained() -> tuple[
    torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler
]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        loss = model(torch.randn(4, 6)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, opt, sched


class _RunsCode:
    """Unpickling this runs `touch MARKER` — what weights_only=True must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_plain_state_dict_keeps_names_and_bytes(coral, repo_path, tmp_path):
    model, _, _ = _trained()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)

    result = coral("import-pytorch", str(path), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "state_dict" and data["tensors"] == 4 and data["optimizers"] == 0
    assert data["branch"] == "main" and data["step"] == 0
    with Repository(repo_path) as repo:
        stored = repo.get_all_weights(data["commit_hash"])
        assert sorted(stored) == sorted(model.state_dict())
        for name, t in model.state_dict().items():
            assert stored[name].data.tobytes() == t.numpy().tobytes()
        assert repo.read_commit(data["commit_hash"]).metadata["import"]["format"] == "pytorch"
    listed = coral("checkpoints", "--json")
    assert [(c["commit"], c["reason"]) for c in json.loads(listed.stdout)] == [
        (data["commit_hash"], "import")
    ]


def test_training_checkpoint_resumes_model_optimizer_and_scheduler(coral, repo_path, tmp_path):
    model, opt, sched = _trained()
    path = tmp_path / "run.pth"
    torch.save(
        {
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": 4,
            "global_step": 120,
            "val_loss": 0.25,
            "hparams": {"lr": 1e-2, "layers": (6, 5, 2)},
        },
        path,
    )
    result = coral("import-pytorch", str(path), "-m", "from the old trainer", "--branch", "run")
    assert result.exit_code == 0, result.output
    assert "(checkpoint)" in result.stdout and "1 optimizer state" in result.stdout
    assert "step 120, epoch 4" in result.stdout and "val_loss=0.25" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())

    fresh = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1.0)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, step_size=1, gamma=0.5)
    with Repository(repo_path) as repo:
        commit = repo.resolve_ref("run")
        meta = repo.read_commit(commit).metadata
        assert meta["hyper_parameters"] == {"lr": 1e-2, "layers": [6, 5, 2]}
        assert meta["metrics"] == {"val_loss": 0.25}
        assert meta["training"]["step"] == 120 and meta["training"]["epoch"] == 4
        state = PyTorchIntegration(fresh, fresh_opt, fresh_sched).load(repo, "run")
    assert (state.step, state.epoch) == (120, 4)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    want, got = opt.state_dict(), fresh_opt.state_dict()
    assert want["param_groups"] == got["param_groups"]
    for i, slots in want["state"].items():
        for key, value in slots.items():
            assert torch.equal(value, got["state"][i][key]), (i, key)
    assert fresh_sched.state_dict() == sched.state_dict()


def test_lightning_checkpoint_keeps_module_names_and_resume_state(coral, repo_path, tmp_path):
    pl = pytest.importorskip("lightning.pytorch")

    class Module(pl.LightningModule):
        def __init__(self, lr: float = 0.05, hidden: int = 3) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.model = torch.nn.Linear(4, hidden)

        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            x, y = batch
            return (self.model(x) - y).pow(2).mean()

        def configure_optimizers(self):  # type: ignore[no-untyped-def]
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randn(8, 3))
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Module(), torch.utils.data.DataLoader(data, batch_size=4))
    path = tmp_path / "epoch=1-step=4.ckpt"
    trainer.save_checkpoint(path)
    original = torch.load(path, weights_only=True)

    result = coral("import-pytorch", str(path), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["kind"] == "lightning" and (out["step"], out["epoch"]) == (4, 2)
    assert out["hyper_parameters"] == {"lr": 0.05, "hidden": 3}

    from coral.integrations.lightning import snapshot_to_checkpoint
    from coral.training.commit import read_checkpoint

    with Repository(repo_path) as repo:
        assert {"model.weight", "model.bias"} <= set(repo.list_weights("HEAD"))
        weights, record, _ = read_checkpoint(repo, "HEAD")
    back = snapshot_to_checkpoint(weights, record)  # what CoralCheckpointIO hands Lightning
    for name, t in original["state_dict"].items():
        assert torch.equal(back["state_dict"][name], t)
    for i, slots in original["optimizer_states"][0]["state"].items():
        for key, value in slots.items():
            assert torch.equal(back["optimizer_states"][0]["state"][i][key], value)
    assert back["loops"] == original["loops"] and back["hyper_parameters"]["lr"] == 0.05


def test_pickle_that_runs_code_is_refused_and_nothing_is_committed(coral, repo_path, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": _RunsCode(marker)}, path)

    result = coral("import-pytorch", str(path))
    assert_user_error(result, "refused to load", "weights_only")
    assert not marker.exists()
    with Repository(repo_path) as repo:
        assert repo.head_commit() is None


def test_mistakes_get_one_error_and_a_hint(coral, repo_path, tmp_path):
    torch.save({"lr": 0.1, "names": ["a", "b"]}, tmp_path / "nomodel.pt")
    assert_user_error(coral("import-pytorch", str(tmp_path / "nomodel.pt")), "no model state dict")
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    assert_user_error(coral("import-pytorch", str(tmp_path / "tensor.pt")), "not a state dict")
    assert_user_error(coral("import-pytorch", str(tmp_path / "missing.pt")), "missing.pt")
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    assert_user_error(coral("import-pytorch", str(tmp_path / "cut.pt")))

    model, _, _ = _trained()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    assert coral("import-pytorch", str(tmp_path / "m.pt")).exit_code == 0
    assert_user_error(coral("import-pytorch", str(tmp_path / "m.pt")), "nothing to commit")
    with Repository(repo_path) as repo:
        assert len(repo.log()) == 1


def test_api_flattens_nested_model_state_and_refuses_the_same_weights(tmp_path):
    nested = {
        "model": {"encoder": {"weight": torch.eye(3)}, "head": {"bias": torch.zeros(2)}},
        "step": torch.tensor(7),
    }
    path = tmp_path / "nested.pt"
    torch.save(nested, path)
    ckpt = read_torch_checkpoint(path)
    assert ckpt.kind == "checkpoint" and ckpt.step == 7 and ckpt.tensors == 2
    with Repository.init(tmp_path / "repo") as repo:
        result = import_pytorch(repo, path, message="nested")
        assert sorted(repo.list_weights(result.commit_hash)) == ["encoder.weight", "head.bias"]
        assert result.to_dict()["message"] == "nested"
        with pytest.raises(NothingToCommitError):
            import_pytorch(repo, path)
    (tmp_path / "list.pt").write_bytes(b"")
    with pytest.raises(InvalidFileError):
        read_torch_checkpoint(tmp_path / "list.pt")


def test_import_pytorch_as_a_real_process(repo_path, tmp_path):
    model, opt, _ = _trained()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, path)
    proc = run_coral(repo_path, "import-pytorch", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["optimizers"] == 1
    proc = run_coral(repo_path, "import-pytorch", str(tmp_path / "nope.pt"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "hint: " in proc.stderr
