"""Hugging Face Trainer on a tiny GPT-2 (built from a config, no downloads): CoralTrainerCallback
commits bit-exact checkpoints, and a run resumed from one ends with exactly the weights of an
uninterrupted run."""

from __future__ import annotations

import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from coral.training import CheckpointConfig  # noqa: E402

MAX_STEPS = 8


class TokenData(torch.utils.data.Dataset):
    def __init__(self, n: int = 24, length: int = 8) -> None:
        g = torch.Generator().manual_seed(3)
        self.ids = torch.randint(0, 64, (n, length), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


class Record(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step
        self.weights: dict[str, torch.Tensor] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _model(seed: int) -> GPT2LMHeadModel:
    set_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16)
    )


def _trainer(model, out, callbacks) -> Trainer:
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=MAX_STEPS,
        per_device_train_batch_size=4,
        learning_rate=5e-3,
        warmup_steps=2,
        lr_scheduler_type="linear",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=42,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return Trainer(model=model, args=args, train_dataset=TokenData(), callbacks=list(callbacks))


def test_trainer_checkpoints_load_bit_exact_and_resume_exactly(repo, tmp_path):
    from coral.integrations.hf_trainer import CoralTrainerCallback

    rec = Record(4)
    reference = _model(0)
    t0 = _trainer(reference, tmp_path / "ref", [rec])
    t0.train()
    ref_losses = [h["loss"] for h in t0.state.log_history if "loss" in h]

    first = _model(0)
    cb = CoralTrainerCallback(repo, CheckpointConfig(every_n_steps=2, keep_last_n=2))
    t1 = _trainer(first, tmp_path / "first", [cb, StopAt(5)])
    t1.train()
    infos = cb.list_checkpoints()
    assert [i.step for i in infos] == [2, 4]  # keep_last_n=2 (step 5 is not a multiple of 2)
    step4 = infos[-1].commit
    names = repo.list_weights(step4)
    assert "transformer.wte.weight" in names and "lm_head.weight" not in names  # tied, once
    assert repo.get_commit(step4).metadata["training"]["aliases"] == {
        "lm_head.weight": "transformer.wte.weight"
    }
    stored = repo.get_all_weights(step4)
    for k, v in rec.weights.items():
        if k == "lm_head.weight":
            continue
        assert stored[k].data.tobytes() == v.numpy().tobytes(), k

    folder = cb.resume_folder(directory=tmp_path / "resume")
    assert folder.endswith("checkpoint-4")
    resumed = _model(1)
    t2 = _trainer(
        resumed,
        tmp_path / "second",
        [CoralTrainerCallback(repo, CheckpointConfig(every_n_steps=2))],
    )
    t2.train(resume_from_checkpoint=folder)
    assert t2.state.global_step == MAX_STEPS
    for k, v in reference.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    resumed_losses = [h["loss"] for h in t2.state.log_history if "loss" in h and h["step"] > 4]
    assert resumed_losses == ref_losses[4:]
    assert [i.step for i in cb.list_checkpoints()] == [
        2,
        4,
        6,
        8,
    ]  # keep_last_n only prunes in its own run


def test_commit_on_trainer_save(repo, tmp_path):
    from coral.integrations.hf_trainer import CoralTrainerCallback

    cb = CoralTrainerCallback(repo)  # no rules: commit when the Trainer saves
    model = _model(0)
    args = TrainingArguments(
        output_dir=str(tmp_path / "o"),
        max_steps=4,
        per_device_train_batch_size=4,
        save_strategy="steps",
        save_steps=2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_steps=1,
    )
    Trainer(model=model, args=args, train_dataset=TokenData(), callbacks=[cb]).train()
    assert [i.step for i in cb.list_checkpoints()] == [2, 4]
    assert all(i.reason == "trainer_save" for i in cb.list_checkpoints())
