"""Training runs record their provenance: CheckpointManager (run config, base model, the commit
it started or resumed from) and the Lightning, Hugging Face Trainer and Keras callbacks (their
hyper-parameters)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coral.porcelain.provenance import lineage
from coral.version_control.provenance import read_provenance
from coral.version_control.repository import Repository

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[3]


def _record(repo: Repository, commit: str) -> dict:
    return read_provenance(repo.read_commit(commit).metadata)


def test_checkpoint_manager_records_run_config_base_and_start(tmp_path):
    from coral.training import CheckpointConfig, CheckpointManager
    from tests.training.torch_models import make_run, train_step

    model, opt, sched = make_run()
    with Repository.init(tmp_path / "r") as repo:
        repo.add_all_weights({k: v.detach().numpy() for k, v in model.state_dict().items()})
        pretrained = repo.commit("pretrained")
        cfg = CheckpointConfig(every_n_steps=1, async_commit=False)
        run = {"lr": 3e-2, "batch_size": 32, "schedule": ("step", 7)}
        with CheckpointManager(
            repo, model, opt, sched, cfg, run_config=run, base_model="org/tiny-lm"
        ) as mgr:
            train_step(model, opt, sched)
            first = mgr.save(step=1)
            second = mgr.save(step=2)
        for commit in (first, second):
            record = _record(repo, commit)
            assert record["base"] == {
                "name": "org/tiny-lm",
                "commit": pretrained,
                "source": "training",
            }
            assert record["config"]["content"] == {
                "lr": 3e-2,
                "batch_size": 32,
                "schedule": ["step", 7],
            }
            assert record["config"]["format"] == "mapping" and len(record["config"]["blake3"]) == 64
        resumed = CheckpointManager(repo, model, opt, sched, cfg)
        resumed.load(first)
        third = resumed.save(step=3)
        resumed.close()
        assert _record(repo, third) == {"base": {"commit": first, "source": "training"}}
        assert [n.depth for n in lineage(repo, third).nodes] == [0, 1, 2, 3]


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated.*")
@pytest.mark.filterwarnings("ignore:.*does not have many workers.*")
def test_lightning_callback_records_hparams_and_trainer_settings(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from coral.integrations.lightning import CoralCheckpoint
    from coral.training import CheckpointConfig

    class Net(pl.LightningModule):
        def __init__(self, lr: float = 0.05, width: int = 4) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Linear(3, width)

        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

        def train_dataloader(self):
            x = torch.ones(8, 3)
            return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=4)

    with Repository.init(tmp_path / "r") as repo:
        cb = CoralCheckpoint(repo, CheckpointConfig(every_n_epochs=1, async_commit=False))
        pl.Trainer(
            max_epochs=1,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            callbacks=[cb],
        ).fit(Net(lr=0.05, width=4))
        (info,) = cb.list_checkpoints()
        content = _record(repo, info.commit)["config"]["content"]
        assert content["hparams"] == {"lr": 0.05, "width": 4}
        assert content["trainer"]["max_epochs"] == 1


def test_hf_trainer_callback_records_training_arguments_and_base_name(tmp_path):
    pytest.importorskip("transformers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from coral.integrations.hf_trainer import CoralTrainerCallback
    from coral.training import CheckpointConfig

    class Tokens(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> dict:
            ids = torch.arange(8) % 16
            return {"input_ids": ids, "labels": ids}

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=8))
    model.config._name_or_path = "org/gpt2-tiny"
    with Repository.init(tmp_path / "r") as repo:
        cb = CoralTrainerCallback(repo, CheckpointConfig(every_n_steps=2, async_commit=False))
        args = TrainingArguments(
            output_dir=str(tmp_path / "out"),
            max_steps=2,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
        )
        Trainer(model=model, args=args, train_dataset=Tokens(), callbacks=[cb]).train()
        (info,) = cb.list_checkpoints()
        record = _record(repo, info.commit)
        assert record["base"] == {"name": "org/gpt2-tiny", "source": "training"}
        assert record["config"]["content"]["learning_rate"] == 1e-3
        assert record["config"]["content"]["max_steps"] == 2


KERAS_RUN = """
import numpy as np, keras
from coral.integrations.keras import CoralKerasCallback
from coral.training import CheckpointConfig
from coral.version_control.provenance import read_provenance
from coral.version_control.repository import Repository

repo = Repository.init("{repo}")
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.compile(optimizer=keras.optimizers.Adam(0.005), loss="mse")
cb = CoralKerasCallback(repo, CheckpointConfig(every_n_epochs=1, async_commit=False))
x = np.ones((8, 3), "float32")
model.fit(x, x[:, :2], epochs=1, batch_size=4, verbose=0, callbacks=[cb])
(info,) = cb.list_checkpoints()
content = read_provenance(repo.read_commit(info.commit).metadata)["config"]["content"]
assert content["params"]["epochs"] == 1, content
assert abs(content["optimizer"]["learning_rate"] - 0.005) < 1e-9, content
print("KERAS-PROVENANCE-OK")
"""


def test_keras_callback_records_fit_params_and_optimizer(tmp_path):
    pytest.importorskip("keras")
    env = {
        **os.environ,
        "KERAS_BACKEND": "torch",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    script = textwrap.dedent(KERAS_RUN).format(repo=tmp_path / "r")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert "KERAS-PROVENANCE-OK" in proc.stdout, proc.stderr[-3000:]
