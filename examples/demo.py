"""Coral in two minutes: train a small model, commit every epoch, then look at the history.

    python examples/demo.py [REPO_DIR]        (default: demo-repo, recreated on every run)

1. trains an MLP on a synthetic classification task for a few epochs (CPU, seconds);
   its first layer is frozen, as when fine-tuning a pretrained backbone;
2. commits the model's state_dict after each epoch through the Python API, with the
   epoch's metrics in the commit metadata, and tags the epoch with the best validation loss;
3. runs the `coral` command line: `log`, `stats`, and `diff` between the first and last epoch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from coral.version_control.repository import Repository

EPOCHS = 6
SEED = 0


def make_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in 32-d space labelled by which of 8 random prototypes they are closest to."""
    prototypes = torch.randn(8, 32, generator=generator)
    x = torch.randn(n, 32, generator=generator)
    y = torch.cdist(x, prototypes).argmin(dim=1)
    return x, y


def make_model() -> nn.Module:
    model = nn.Sequential(
        nn.Linear(32, 256),
        nn.ReLU(),  # "backbone": frozen
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Linear(256, 8),
    )
    for p in model[0].parameters():
        p.requires_grad_(False)
    return model


def train(repo: Repository) -> list[str]:
    """Train, committing after every epoch; returns the commit hashes in order."""
    gen = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    x, y = make_data(6000, gen)
    x_train, y_train, x_val, y_val = x[:5000], y[:5000], x[5000:], y[5000:]
    model = make_model()
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9
    )
    loss_fn = nn.CrossEntropyLoss()
    commits: list[str] = []
    best: tuple[float, str, int] | None = None
    for epoch in range(1, EPOCHS + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), 100):
            idx = order[start : start + 100]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = float(loss_fn(logits, y_val))
            accuracy = float((logits.argmax(dim=1) == y_val).float().mean())
        metrics = {
            "train_loss": round(loss.item(), 4),
            "val_loss": round(val_loss, 4),
            "accuracy": round(accuracy, 4),
        }
        repo.add_all_weights(model.state_dict())
        commit = repo.commit(f"epoch {epoch}", metadata={"metrics": metrics, "epoch": epoch})
        commits.append(commit)
        print(f"epoch {epoch}: val_loss={val_loss:.4f} accuracy={accuracy:.1%} -> {commit[:10]}")
        if best is None or val_loss < best[0]:
            best = (val_loss, commit, epoch)
    assert best is not None
    tag = repo.tag_version(
        "best",
        description=f"lowest validation loss (epoch {best[2]})",
        metrics={"val_loss": round(best[0], 4)},
        ref=best[1],
    )
    print(f"tagged epoch {best[2]} ({tag.commit_hash[:10]}) as 'best'")
    return commits


def coral_cli() -> list[str]:
    """The installed `coral` command (beside this Python), or `python -m coral.cli.main`."""
    exe = Path(sys.executable).with_name("coral")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "coral.cli.main"]


def run_cli(repo_dir: Path, *args: str) -> None:
    command = ["coral", "-C", str(repo_dir), *args]
    print(f"\n$ {' '.join(command)}", flush=True)
    subprocess.run([*coral_cli(), "-C", str(repo_dir), *args], check=True)


def main() -> None:
    repo_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-repo")
    if repo_dir.exists():
        if not (repo_dir / ".coral").is_dir():
            sys.exit(f"{repo_dir} exists and is not a Coral repository; not touching it")
        shutil.rmtree(repo_dir)
    torch.set_num_threads(min(4, torch.get_num_threads()))
    with Repository.init(repo_dir) as repo:
        print(f"repository: {repo.coral_dir}")
        commits = train(repo)
    run_cli(repo_dir, "log", "--oneline")
    run_cli(repo_dir, "stats")
    run_cli(repo_dir, "diff", commits[0][:10], commits[-1][:10])


if __name__ == "__main__":
    main()
