"""Chapter 8.1's code, copied verbatim from the book, run against real training loops.

The book's examples call helpers they do not define (`train_step`, `validate`, `model`,
`train_loader`, ...). The harness below defines them around a real torch model, trained with
a real optimizer. Only the placeholder ids of "Comparing Experiments" ("exp1"...) and
"Resuming Failed Experiments" ("failed_exp_id") are replaced by real ids; every other line
runs unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the chapter 8.1 examples train a torch model")

from coral.experiments import ExperimentStatus, ExperimentTracker, experiment_for_commit  # noqa: E402
from coral.version_control.repository import Repository  # noqa: E402

# ---- chapter 8.1, verbatim ---------------------------------------------------------------------
TYPES_STATUS = """\
from coral.experiments import ExperimentStatus

# Available states
ExperimentStatus.PENDING     # Created but not started
ExperimentStatus.RUNNING     # Currently executing
ExperimentStatus.COMPLETED   # Successfully finished
ExperimentStatus.FAILED      # Terminated with error
ExperimentStatus.CANCELLED   # Manually cancelled
"""

TYPES_METRIC = """\
from coral.experiments import ExperimentMetric
from datetime import datetime

metric = ExperimentMetric(
    name="loss",
    value=0.234,
    step=1000,
    timestamp=datetime.now(),
    metadata={"learning_rate": 0.001}
)
"""

TYPES_EXPERIMENT = """\
from coral.experiments import Experiment

experiment = Experiment(
    experiment_id="a1b2c3d4",
    name="bert-finetuning",
    description="Fine-tune BERT on customer reviews",
    status=ExperimentStatus.RUNNING,
    created_at=datetime.now(),
    started_at=datetime.now(),
    ended_at=None,
    metrics=[],  # List of ExperimentMetric
    params={"lr": 0.001, "batch_size": 32},
    tags=["nlp", "bert", "production"],
    commit_hash="abc123def456",
    branch="experiments/bert-v2",
    parent_experiment=None,
    notes="Using improved tokenization"
)
"""

TRACKER_USAGE = """\
from coral.version_control.repository import Repository
from coral.experiments import ExperimentTracker

# Initialize tracker
repo = Repository("./my-model")
tracker = ExperimentTracker(repo)

# Start an experiment
exp = tracker.start(
    name="gpt-finetuning",
    description="Fine-tune GPT-2 on domain-specific data",
    params={
        "learning_rate": 2e-5,
        "batch_size": 16,
        "epochs": 10,
        "warmup_steps": 500
    },
    tags=["llm", "gpt2", "finetuning"]
)

# Log metrics during training
for epoch in range(10):
    for step in range(1000):
        loss = train_step()
        tracker.log("loss", loss, step=epoch * 1000 + step)

    # Log epoch-level metrics
    val_loss = validate()
    tracker.log_metrics({
        "val_loss": val_loss,
        "val_perplexity": np.exp(val_loss)
    }, step=epoch)

# Add notes or tags during training
tracker.add_tags(["converged", "production-ready"])
tracker.set_notes("Model converged after 7 epochs. Early stopping triggered.")

# Save model and create commit
repo.add_all_weights(model_weights)
commit_hash = repo.commit("Completed GPT-2 fine-tuning", author="researcher@example.com")

# End experiment and link to commit
tracker.end(
    status=ExperimentStatus.COMPLETED,
    commit_hash=commit_hash
)
"""

COMPARING = """\
# List recent experiments
experiments = tracker.list(
    status=ExperimentStatus.COMPLETED,
    tags=["production-ready"],
    limit=20
)

# Find best performing experiments
best_by_loss = tracker.find_best(
    metric="val_loss",
    mode="min",  # minimize validation loss
    status=ExperimentStatus.COMPLETED,
    limit=5
)

for result in best_by_loss:
    print(f"{result['name']}: {result['best_value']:.4f}")
    print(f"  Commit: {result['commit_hash']}")
    print(f"  Params: {result['params']}")

# Compare multiple experiments side-by-side
comparison = tracker.compare(
    experiment_ids=["exp1", "exp2", "exp3"],
    metrics=["val_loss", "val_accuracy"]
)

print(f"Experiments: {comparison['experiments']}")
print(f"Metrics: {comparison['metrics']}")
print(f"Parameters: {comparison['params']}")
"""

SUMMARY = """\
summary = tracker.get_summary()
print(f"Total experiments: {summary['total_experiments']}")
print(f"By status: {summary['by_status']}")
print(f"Unique experiments: {summary['unique_names']}")
print(f"Branches used: {summary['branches']}")
print(f"Total metrics logged: {summary['total_metrics_logged']}")
"""

RESUMING = """\
# Resume a failed experiment
original_exp = tracker.get("failed_exp_id")
resumed_exp = tracker.resume("failed_exp_id")

# The resumed experiment links to the original
assert resumed_exp.parent_experiment == original_exp.experiment_id
"""

COMPLETE_WORKFLOW = """\
from coral.version_control.repository import Repository
from coral.experiments import ExperimentTracker, ExperimentStatus
import torch

# Initialize
repo = Repository("./bert-experiments")
tracker = ExperimentTracker(repo)

# Define hyperparameters
params = {
    "model": "bert-base-uncased",
    "learning_rate": 2e-5,
    "batch_size": 32,
    "max_epochs": 10,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "gradient_clip": 1.0
}

# Start experiment
exp = tracker.start(
    name="bert-sentiment-v3",
    description="BERT fine-tuning with improved hyperparameters",
    params=params,
    tags=["bert", "sentiment", "production-candidate"]
)

try:
    # Training loop
    best_val_loss = float('inf')
    patience_counter = 0

    for epoch in range(params["max_epochs"]):
        # Training phase
        model.train()
        train_losses = []

        for batch_idx, batch in enumerate(train_loader):
            loss = train_step(model, batch)
            train_losses.append(loss)

            # Log step-level metrics
            if batch_idx % 100 == 0:
                tracker.log("train_loss", loss, step=epoch * len(train_loader) + batch_idx)

        # Validation phase
        model.eval()
        val_metrics = validate(model, val_loader)

        # Log epoch-level metrics
        tracker.log_metrics({
            "epoch_train_loss": np.mean(train_losses),
            "val_loss": val_metrics["loss"],
            "val_accuracy": val_metrics["accuracy"],
            "val_f1": val_metrics["f1"],
            "learning_rate": optimizer.param_groups[0]['lr']
        }, step=epoch)

        # Early stopping logic
        if val_metrics["loss"] < best_val_loss:
            best_val_loss = val_metrics["loss"]
            patience_counter = 0

            # Save best model
            model_weights = extract_weights(model)
            repo.add_all_weights(model_weights)
            commit_hash = repo.commit(
                f"Epoch {epoch}: val_loss={val_metrics['loss']:.4f}",
                author="training-script@example.com"
            )
            tracker.log_params({"best_checkpoint": commit_hash})

        else:
            patience_counter += 1
            if patience_counter >= 3:
                tracker.set_notes(f"Early stopping triggered at epoch {epoch}")
                break

    # Training completed successfully
    tracker.add_tags(["converged", "ready-for-eval"])
    final_commit = repo.commit("Final model checkpoint", author="training-script@example.com")
    tracker.end(status=ExperimentStatus.COMPLETED, commit_hash=final_commit)

    print(f"Training completed! Experiment ID: {exp.experiment_id}")
    print(f"Best validation loss: {best_val_loss:.4f}")

except Exception as e:
    # Handle training failures
    tracker.fail(error_message=str(e))
    print(f"Training failed: {e}")
    raise
"""


# ---- the harness ---------------------------------------------------------------------------------
W_TRAIN = (2.0, 0.0)  # the training data's true weights
W_VAL = (1.0, 1.0)  # the validation data's: training moves past them, so val loss turns up


def _regression(n: int, w: tuple[float, float], seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = x @ torch.tensor(w).reshape(2, 1)
    return torch.utils.data.TensorDataset(x, y)


class Harness:
    """A linear model trained with SGD on one target and validated on another: validation
    loss falls for the first epoch, then rises, so the book's early stopping triggers."""

    def __init__(self, lr: float = 0.03) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Linear(2, 1)
        with torch.no_grad():
            self.model.weight.zero_()
            self.model.bias.zero_()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.train_loader = torch.utils.data.DataLoader(
            _regression(256, W_TRAIN, 1),
            batch_size=32,
            shuffle=True,
            generator=torch.Generator().manual_seed(2),
        )
        self.val_loader = torch.utils.data.DataLoader(_regression(128, W_VAL, 3), batch_size=64)
        self.repo: Repository | None = None

    def train_step(self, model: Any, batch: Any) -> float:
        x, y = batch
        self.optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def validate(self, model: Any, val_loader: Any) -> dict[str, float]:
        """Loss, sign accuracy and F1 on the validation set.

        Like a working tree, the model's current weights are staged in the repository after
        each validation: the book's final `repo.commit("Final model checkpoint")` commits the
        weights of the last epoch (when that epoch did not already commit them as the best)."""
        preds, targets = [], []
        with torch.no_grad():
            for x, y in val_loader:
                preds.append(model(x))
                targets.append(y)
        p, t = torch.cat(preds), torch.cat(targets)
        loss = float(torch.nn.functional.mse_loss(p, t))
        pp, tp = p > 0, t > 0
        tp_count = float((pp & tp).sum())
        precision = tp_count / max(float(pp.sum()), 1.0)
        recall = tp_count / max(float(tp.sum()), 1.0)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        if self.repo is not None:
            self.repo.add_all_weights(self.extract_weights(model))
        return {"loss": loss, "accuracy": float((pp == tp).float().mean()), "f1": f1}

    @staticmethod
    def extract_weights(model: Any) -> dict[str, Any]:
        return {name: t.detach().clone() for name, t in model.state_dict().items()}


# ---- tests -------------------------------------------------------------------------------------
def test_core_types_examples_run_verbatim() -> None:
    ns: dict[str, Any] = {}  # the blocks read as one session (later ones use earlier imports)
    for code in (TYPES_STATUS, TYPES_METRIC, TYPES_EXPERIMENT):
        exec(compile(code, "chapter-8.1", "exec"), ns)
    assert ns["experiment"].status is ExperimentStatus.RUNNING
    assert ns["experiment"].params == {"lr": 0.001, "batch_size": 32}


def test_complete_workflow_example_runs_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Repository.init("./bert-experiments").close()
    h = Harness()
    ns: dict[str, Any] = {
        "np": np,
        "model": h.model,
        "train_loader": h.train_loader,
        "val_loader": h.val_loader,
        "optimizer": h.optimizer,
        "train_step": h.train_step,
        "validate": h.validate,
        "extract_weights": h.extract_weights,
    }

    h.repo = Repository("./bert-experiments")  # the harness's own handle on the same repository
    exec(compile(COMPLETE_WORKFLOW, "chapter-8.1-complete-workflow", "exec"), ns)
    h.repo.close()

    tracker: ExperimentTracker = ns["tracker"]
    repo: Repository = ns["repo"]
    exp = tracker.get(ns["exp"].experiment_id)
    assert exp.status is ExperimentStatus.COMPLETED
    assert exp.notes is not None and exp.notes.startswith("Early stopping triggered at epoch")
    assert exp.tags == ["bert", "sentiment", "production-candidate", "converged", "ready-for-eval"]
    assert exp.branch == "main"
    assert exp.commit_hash == ns["final_commit"]
    # one checkpoint commit per improving epoch, then the final one: all linked, in order
    history = [c.commit_hash for c in reversed(repo.log())]
    assert exp.commits == history
    assert exp.params["best_checkpoint"] == history[-2]
    assert {link["source"] for link in tracker.commit_links(exp.experiment_id)} >= {
        "param:best_checkpoint",
        "end",
    }
    for commit in history:
        assert [e.experiment_id for e in experiment_for_commit(repo, commit)] == [exp.experiment_id]
    # epoch metrics, once per epoch run; train loss once per epoch (batch_idx 0)
    epochs = len(exp.get_metric("val_loss"))
    assert 2 <= epochs < 10
    assert [m.step for m in exp.get_metric("val_loss")] == list(range(epochs))
    assert len(exp.get_metric("train_loss")) == epochs
    assert exp.best("val_loss") == pytest.approx(ns["best_val_loss"])
    assert exp.latest("learning_rate") == pytest.approx(0.03)
    # the committed checkpoint is the best model's weights
    best = repo.get_all_weights(exp.params["best_checkpoint"])
    assert set(best) == {"weight", "bias"}


def test_tracker_usage_comparing_summary_resuming_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Repository.init("./my-model").close()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])

    def train_step() -> float:
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.item())

    def validate() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(model(x), y))

    # ExperimentStatus comes from the chapter's first block (`from coral.experiments import ...`)
    ns: dict[str, Any] = {
        "np": np,
        "train_step": train_step,
        "validate": validate,
        "model_weights": model.state_dict(),
        "ExperimentStatus": ExperimentStatus,
    }
    exec(compile(TRACKER_USAGE, "chapter-8.1-usage", "exec"), ns)
    tracker: ExperimentTracker = ns["tracker"]
    first = tracker.get(ns["exp"].experiment_id)
    assert first.status is ExperimentStatus.COMPLETED
    assert len(first.get_metric("loss")) == 10_000
    assert [m.step for m in first.get_metric("val_loss")] == list(range(10))
    assert first.commit_hash == ns["commit_hash"]
    assert "production-ready" in first.tags

    # two more experiments to compare: one completed, one failed
    second = tracker.start(
        "gpt-finetuning", params={"learning_rate": 1e-4}, tags=["production-ready"]
    )
    tracker.log_metrics({"val_loss": 0.5, "val_accuracy": 0.8}, step=0)
    tracker.end()
    third = tracker.start("gpt-finetuning", params={"learning_rate": 1e-3})
    tracker.log("val_loss", 9.0, step=0)
    tracker.fail(error_message="diverged")

    ids = {"exp1": first.experiment_id, "exp2": second.experiment_id, "exp3": third.experiment_id}
    code = COMPARING
    for placeholder, real in ids.items():
        code = code.replace(f'"{placeholder}"', f'"{real}"')
    exec(compile(code, "chapter-8.1-comparing", "exec"), ns)
    assert [e.experiment_id for e in ns["experiments"]] == [
        second.experiment_id,
        first.experiment_id,
    ]
    assert [r["experiment_id"] for r in ns["best_by_loss"]] == sorted(
        [first.experiment_id, second.experiment_id],
        key=lambda i: tracker.get(i, include_metrics=False).summary["val_loss"]["min"],
    )
    comparison = ns["comparison"]
    assert set(comparison) >= {"experiments", "metrics", "params"}
    assert comparison["metrics"]["val_accuracy"][first.experiment_id] is None
    assert comparison["metrics"]["val_accuracy"][second.experiment_id]["last"] == 0.8
    assert comparison["params"]["learning_rate"][third.experiment_id] == 1e-3

    exec(compile(SUMMARY, "chapter-8.1-summary", "exec"), ns)
    summary = ns["summary"]
    assert summary["total_experiments"] == 3
    assert summary["by_status"]["completed"] == 2 and summary["by_status"]["failed"] == 1
    assert summary["unique_names"] == 1
    assert summary["branches"] == ["main"]
    assert summary["total_metrics_logged"] == 10_000 + 20 + 2 + 1

    exec(
        compile(
            RESUMING.replace('"failed_exp_id"', f'"{third.experiment_id}"'),
            "chapter-8.1-resuming",
            "exec",
        ),
        ns,
    )
    resumed = ns["resumed_exp"]
    assert resumed.status is ExperimentStatus.RUNNING
    assert resumed.params == {"learning_rate": 1e-3}
    assert tracker.current_id == resumed.experiment_id
    tracker.end()
