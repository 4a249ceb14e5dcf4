"""A small torch model with everything a checkpoint must keep: parameters, buffers (BatchNorm
running stats, an integer counter), tied weights and dropout (RNG), plus a deterministic loop."""

from __future__ import annotations

import torch
from torch import nn


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 16, dim: int = 12) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.encoder = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Dropout(0.2), nn.Linear(dim, dim)
        )
        self.norm = nn.BatchNorm1d(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(self.embed(x))))


def make_run(
    seed: int = 0, lr: float = 3e-2
) -> tuple[TinyLM, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(seed)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.7)
    return model, opt, sched


def train_step(
    model: TinyLM, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler
) -> float:
    """One step on a batch drawn from torch's global RNG (so data order depends on RNG state)."""
    x = torch.randint(0, 16, (32,))
    y = (x * 3 + 1) % 16
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return float(loss.item())
