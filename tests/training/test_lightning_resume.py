"""The README's Lightning example — a LightningModule without an LR scheduler — resumes: the
second run picks up the newest checkpoint (`ckpt.resume_path()`) and continues; with a
scheduler too."""

from __future__ import annotations

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from coral.integrations.lightning import CoralCheckpoint  # noqa: E402
from coral.training import CheckpointConfig  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated.*"),
]


class Regressor(pl.LightningModule):  # the README's, with the optimizer a parameter
    def __init__(self, optimizer: str = "sgd", scheduler: bool = False) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 1)
        self.optimizer, self.scheduler = optimizer, scheduler

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        make = torch.optim.SGD if self.optimizer == "sgd" else torch.optim.Adam
        opt = make(self.parameters(), lr=0.1)
        if not self.scheduler:
            return opt
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)}


def _fit(repo, max_epochs: int, **module) -> CoralCheckpoint:
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8
    )
    ckpt = CoralCheckpoint(repo, CheckpointConfig(every_n_epochs=1, keep_last_n=2))
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[ckpt],
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Regressor(**module), data, ckpt_path=ckpt.resume_path())
    return ckpt


@pytest.mark.parametrize(
    "module",
    [
        {"optimizer": "sgd"},  # the README's exact case
        {"optimizer": "adam"},  # optimizer state, still no scheduler
        {"optimizer": "adam", "scheduler": True},
    ],
)
def test_a_second_run_resumes_from_the_newest_checkpoint(repo, module) -> None:
    first = _fit(repo, 2, **module)
    assert [c.epoch for c in first.list_checkpoints()] == [0, 1]
    second = _fit(repo, 4, **module)  # crashed with a KeyError without a scheduler
    assert [c.epoch for c in second.list_checkpoints()] == [2, 3]  # keep_last_n=2
    newest = repo.get_commit(second.list_checkpoints()[-1].commit)
    assert newest.metadata["training"]["epoch"] == 3
