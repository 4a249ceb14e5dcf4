"""PyTorch Lightning: CoralCheckpoint commits during `Trainer.fit`, loads back bit-exact, and a
resumed fit continues with exactly the losses of an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from coral.training import CheckpointConfig  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated.*"),
]


class LitNet(pl.LightningModule):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Dropout(0.25), torch.nn.Linear(16, 1)
        )
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-2)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 3, 0.5)}

    def train_dataloader(self):
        g = torch.Generator().manual_seed(7)
        x = torch.randn(40, 6, generator=g)
        y = x.sum(dim=1, keepdim=True)
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True
        )

    def val_dataloader(self):
        g = torch.Generator().manual_seed(8)
        x = torch.randn(16, 6, generator=g)
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=16
        )


def _trainer(max_epochs: int, callbacks=()) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        deterministic=True,
        callbacks=list(callbacks),
    )


def test_fit_commits_resume_and_bit_exact_weights(repo):
    from coral.integrations.lightning import CoralCheckpoint

    torch.manual_seed(0)
    reference = LitNet()
    _trainer(4).fit(reference)
    per_epoch = len(reference.losses) // 4

    torch.manual_seed(0)
    first = LitNet()
    cb = CoralCheckpoint(
        repo, CheckpointConfig(every_n_epochs=1, on_improvement="val_loss", keep_last_n=5)
    )
    _trainer(2, [cb]).fit(first)  # "crashes" after epoch 2
    assert first.losses == reference.losses[: 2 * per_epoch]
    infos = cb.list_checkpoints()
    assert [i.epoch for i in infos] == [0, 1]
    assert all("val_loss" in i.metrics for i in infos)

    # the newest checkpoint holds exactly the weights the module ended with
    weights = repo.get_all_weights(infos[-1].commit)
    for name, t in first.state_dict().items():
        assert weights[name].data.tobytes() == t.numpy().tobytes(), name
    record = repo.get_commit(infos[-1].commit).metadata["training"]
    assert record["framework"] == "lightning" and record["step"] == 2 * per_epoch
    assert any(n.startswith("__optim__/0/") for n in weights)

    torch.manual_seed(1234)
    np.random.seed(1234)
    resumed = LitNet(seed=99)
    cb2 = CoralCheckpoint(repo, CheckpointConfig(every_n_epochs=1))
    path = cb2.resume_path()
    assert path == "coral:" + infos[-1].commit
    _trainer(4, [cb2]).fit(resumed, ckpt_path=path)
    assert resumed.losses == reference.losses[2 * per_epoch :]
    for name, t in reference.state_dict().items():
        assert torch.equal(t, resumed.state_dict()[name]), name
    assert [i.epoch for i in cb2.list_checkpoints()] == [0, 1, 2, 3]


def test_every_n_steps_and_checkpoint_dict_round_trip(repo):
    from coral.integrations.lightning import CoralCheckpoint, CoralCheckpointIO

    model = LitNet()
    cb = CoralCheckpoint(repo, CheckpointConfig(every_n_steps=2, async_commit=False))
    trainer = _trainer(1, [cb])
    trainer.fit(model)
    infos = cb.list_checkpoints()
    assert [i.step for i in infos] == [2, 4]
    loaded = CoralCheckpointIO(repo).load_checkpoint(cb.resume_path())
    assert loaded["global_step"] == 4 and loaded["epoch"] == 0
    assert set(loaded["state_dict"]) == set(model.state_dict())
    assert loaded["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-2)
    assert "loops" in loaded and "fit_loop" in loaded["loops"]


class NoSchedulerNet(LitNet):
    """The README's case: configure_optimizers returns a bare optimizer, no LR scheduler."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def test_resume_without_a_scheduler_continues_exactly(repo):
    from coral.integrations.lightning import CoralCheckpoint

    torch.manual_seed(0)
    reference = NoSchedulerNet()
    _trainer(3).fit(reference)
    per_epoch = len(reference.losses) // 3

    torch.manual_seed(0)
    first = NoSchedulerNet()
    _trainer(1, [CoralCheckpoint(repo, CheckpointConfig(every_n_epochs=1))]).fit(first)

    torch.manual_seed(5)
    resumed = NoSchedulerNet(seed=3)
    cb = CoralCheckpoint(repo, CheckpointConfig(every_n_epochs=1))
    _trainer(3, [cb]).fit(resumed, ckpt_path=cb.resume_path())  # crashed with a KeyError
    assert resumed.losses == reference.losses[per_epoch:]
    for name, t in reference.state_dict().items():
        assert torch.equal(t, resumed.state_dict()[name]), name
    assert [i.epoch for i in cb.list_checkpoints()] == [0, 1, 2]
