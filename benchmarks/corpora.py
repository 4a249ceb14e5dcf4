"""Checkpoint corpora for the storage benchmark, trained here with torch and cached on disk.

Two kinds, both from a small GPT-style language model trained from scratch on synthetic tokens
(a random second-order Markov source, so there is structure to learn and no data to download):

- trajectory: one AdamW run, a checkpoint every `steps_per_ckpt` steps (fp32), and a bf16 copy
  of each checkpoint (a second corpus). Checkpoint i's reference is checkpoint i-1.
- family: a base model (the trajectory's last checkpoint, i.e. pretrained a bit) and four
  derivatives on a shifted data source: a full fine-tune, a last-layers fine-tune (everything
  else frozen, so those tensors are bit-identical to the base), a merged LoRA (W + s·BA on the
  attention matrices) and a one-tensor rank-1 edit. Every derivative's reference is the base.

Corpora are cached as safetensors files under `<cache>/corpora/<name>/` with a `spec.json`; a
cache whose spec differs from the requested one is rebuilt.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np

SPEC_VERSION = 1


@dataclass(frozen=True)
class ModelSpec:
    """Size of the GPT-style model and of the training run behind every corpus."""

    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    vocab: int = 512
    context: int = 64
    batch: int = 8
    checkpoints: int = 12
    steps_per_ckpt: int = 15
    lr: float = 2e-3
    finetune_steps: int = 40
    finetune_lr: float = 3e-4
    lora_rank: int = 8
    seed: int = 0

    @classmethod
    def scaled(cls, scale: float) -> ModelSpec:
        """Width and depth grow with `scale` (parameters ~ scale^3); scale 1: ~3.4 M parameters."""
        d = max(64, round(256 * scale / 64) * 64)
        return cls(d_model=d, n_layers=max(2, round(4 * scale)), n_heads=max(2, d // 64))


@dataclass
class Corpus:
    """An ordered list of checkpoints, each with the index of the checkpoint it derives from."""

    name: str
    description: str
    names: list[str]
    checkpoints: list[dict[str, np.ndarray]]
    references: list[int | None]
    info: dict[str, object] = field(default_factory=dict)

    @property
    def raw_bytes(self) -> int:
        return sum(a.nbytes for ck in self.checkpoints for a in ck.values())

    @property
    def largest_tensor(self) -> int:
        return max(a.nbytes for ck in self.checkpoints for a in ck.values())

    @property
    def dtype(self) -> str:
        return next(iter(self.checkpoints[0].values())).dtype.name


# -- data -------------------------------------------------------------------------------------
class MarkovSource:
    """Tokens from a random sparse Markov chain (vectorised over many streams).

    After an even token the next one depends on that token only (first order); after an odd
    token it depends on the last two (second order, hashed into `vocab` states). Each state has
    `fanout` successors with Zipf-like probabilities, so a model can learn most of it quickly.
    """

    def __init__(self, vocab: int, seed: int, fanout: int = 4) -> None:
        rng = np.random.default_rng(seed)
        self.vocab = self.states = vocab
        self.successors = rng.integers(0, vocab, size=(2 * vocab, fanout))
        probs = 1.0 / np.arange(1, fanout + 1) ** 1.5
        self.cdf = np.cumsum(probs / probs.sum())
        self.mix = rng.integers(1, vocab, size=2)
        self.rng = rng

    def batch(self, batch: int, length: int) -> np.ndarray:
        out = np.empty((batch, length), dtype=np.int64)
        a = self.rng.integers(0, self.vocab, size=batch)
        b = self.rng.integers(0, self.vocab, size=batch)
        for t in range(length):
            second = (a * self.mix[0] + b * self.mix[1]) % self.states + self.states
            state = np.where(b % 2 == 0, b, second)
            pick = np.searchsorted(self.cdf, self.rng.random(batch))
            nxt = self.successors[state, pick]
            out[:, t] = nxt
            a, b = b, nxt
        return out


# -- model ------------------------------------------------------------------------------------
def _build_model(spec: ModelSpec):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = spec.d_model
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc = nn.Linear(d, 4 * d)
            self.out = nn.Linear(4 * d, d)

        def attn_forward(self, x, lora=None):
            bsz, t, d = x.shape
            q, k, v = self.qkv(x).split(d, dim=2)
            shape = (bsz, t, spec.n_heads, d // spec.n_heads)
            q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(bsz, t, d))

        def forward(self, x):
            x = x + self.attn_forward(self.ln1(x))
            return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(spec.vocab, spec.d_model)
            self.pos = nn.Embedding(spec.context, spec.d_model)
            self.blocks = nn.ModuleList(Block() for _ in range(spec.n_layers))
            self.ln_f = nn.LayerNorm(spec.d_model)
            self.head = nn.Linear(spec.d_model, spec.vocab, bias=False)
            for p in self.parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, std=0.02)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    return GPT()


class _LoRALinear:
    """Adds s·B·A to a frozen nn.Linear's output (A: r×in, B: out×r, B starts at zero)."""

    def __init__(self, linear, rank: int, gen):
        import torch

        self.linear, self.scale = linear, 2.0
        out_f, in_f = linear.weight.shape
        self.A = torch.nn.Parameter(torch.randn(rank, in_f, generator=gen) / math.sqrt(in_f))
        self.B = torch.nn.Parameter(torch.zeros(out_f, rank))
        base_forward = linear.forward
        linear.forward = lambda x: base_forward(x) + self.scale * (x @ self.A.T @ self.B.T)

    def merged_weight(self):
        return self.linear.weight.detach() + self.scale * (self.B.detach() @ self.A.detach())


def _train(
    model,
    source: MarkovSource,
    spec: ModelSpec,
    steps: int,
    lr: float,
    params=None,
    every: int = 0,
    on_ckpt=None,
    warmup: int = 0,
) -> float:
    import torch

    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    loss_val = float("nan")
    for step in range(1, steps + 1):
        frac = step / steps
        scale = (
            step / warmup
            if warmup and step <= warmup
            else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
        )
        for g in opt.param_groups:
            g["lr"] = lr * scale
        data = torch.from_numpy(source.batch(spec.batch, spec.context + 1))
        logits = model(data[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, spec.vocab), data[:, 1:].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        loss_val = float(loss.detach())
        if every and on_ckpt is not None and step % every == 0:
            on_ckpt(step, loss_val)
    return loss_val


def _state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().clone().contiguous().numpy() for k, v in model.state_dict().items()}


def to_bf16(ck: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Round-to-nearest-even bf16 copy (what `tensor.to(torch.bfloat16)` gives)."""
    import torch

    return {
        k: torch.from_numpy(v).to(torch.bfloat16).view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        for k, v in ck.items()
    }


# -- cache ------------------------------------------------------------------------------------
def _to_torch(ck: dict[str, np.ndarray]):
    import torch

    out = {}
    for k, v in ck.items():
        if v.dtype == ml_dtypes.bfloat16:
            out[k] = torch.from_numpy(v.view(np.int16)).view(torch.bfloat16)
        else:
            out[k] = torch.from_numpy(v)
    return out


def from_torch(tensors) -> dict[str, np.ndarray]:
    import torch

    out = {}
    for k, t in tensors.items():
        if t.dtype == torch.bfloat16:
            out[k] = t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        else:
            out[k] = t.numpy()
    return out


def _save_corpus(corpus: Corpus, folder: Path, spec: ModelSpec) -> None:
    from safetensors.torch import save_file

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i, (name, ck) in enumerate(zip(corpus.names, corpus.checkpoints, strict=True)):
        save_file(_to_torch(ck), str(folder / f"{i:02d}-{name}.safetensors"))
    doc = {
        "version": SPEC_VERSION,
        "spec": asdict(spec),
        "name": corpus.name,
        "description": corpus.description,
        "names": corpus.names,
        "references": corpus.references,
        "info": corpus.info,
    }
    (folder / "spec.json").write_text(json.dumps(doc, indent=1))


def _load_corpus(folder: Path, spec: ModelSpec) -> Corpus | None:
    from safetensors.torch import load_file

    meta = folder / "spec.json"
    if not meta.is_file():
        return None
    doc = json.loads(meta.read_text())
    if doc.get("version") != SPEC_VERSION or doc.get("spec") != asdict(spec):
        return None
    cks = []
    for i, name in enumerate(doc["names"]):
        path = folder / f"{i:02d}-{name}.safetensors"
        if not path.is_file():
            return None
        loaded = load_file(str(path))
        cks.append({k: np.array(v, copy=True) for k, v in from_torch(loaded).items()})
    return Corpus(
        doc["name"], doc["description"], doc["names"], cks, doc["references"], doc.get("info", {})
    )


# -- builders ---------------------------------------------------------------------------------
def _train_trajectory(spec: ModelSpec, log) -> tuple[Corpus, object]:
    import torch

    torch.manual_seed(spec.seed)
    model = _build_model(spec)
    source = MarkovSource(spec.vocab, seed=spec.seed + 1)
    names: list[str] = []
    cks: list[dict[str, np.ndarray]] = []
    losses: list[float] = []

    def on_ckpt(step: int, loss: float) -> None:
        names.append(f"step{step:05d}")
        cks.append(_state(model))
        losses.append(round(loss, 4))
        log(f"  trajectory: step {step} loss {loss:.3f}")

    t0 = time.perf_counter()
    steps = spec.checkpoints * spec.steps_per_ckpt
    _train(
        model,
        source,
        spec,
        steps,
        spec.lr,
        every=spec.steps_per_ckpt,
        on_ckpt=on_ckpt,
        warmup=spec.steps_per_ckpt,
    )
    n_params = sum(p.numel() for p in model.parameters())
    info = {
        "params": n_params,
        "losses": losses,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "optimizer": "AdamW(wd=0.1, betas=(0.9,0.95)), warmup + cosine",
        "lr": spec.lr,
        "steps_per_checkpoint": spec.steps_per_ckpt,
    }
    desc = (
        f"GPT {spec.n_layers}x{spec.d_model}, vocab {spec.vocab}, {n_params / 1e6:.2f} M params; "
        f"{spec.checkpoints} checkpoints every {spec.steps_per_ckpt} AdamW steps"
    )
    refs: list[int | None] = [None, *range(len(cks) - 1)]
    return Corpus("trajectory-fp32", desc, names, cks, refs, info), model


def _finetune_family(spec: ModelSpec, base_model, log) -> Corpus:
    import copy

    import torch

    base = _state(base_model)
    shifted = MarkovSource(spec.vocab, seed=spec.seed + 101)
    members: dict[str, dict[str, np.ndarray]] = {"base": base}
    gen = torch.Generator().manual_seed(spec.seed + 7)

    full = copy.deepcopy(base_model)
    loss = _train(full, shifted, spec, spec.finetune_steps, spec.finetune_lr)
    members["full-ft"] = _state(full)
    log(f"  family: full fine-tune loss {loss:.3f}")

    last = copy.deepcopy(base_model)
    for p in last.parameters():
        p.requires_grad_(False)
    trainable = [*last.blocks[-1].parameters(), *last.ln_f.parameters(), *last.head.parameters()]
    for p in trainable:
        p.requires_grad_(True)
    loss = _train(last, shifted, spec, spec.finetune_steps, spec.finetune_lr, params=trainable)
    members["last-layers-ft"] = _state(last)
    log(f"  family: last-layers fine-tune loss {loss:.3f}")

    lora_model = copy.deepcopy(base_model)
    for p in lora_model.parameters():
        p.requires_grad_(False)
    adapters = {}
    for i, block in enumerate(lora_model.blocks):
        for part in ("qkv", "proj"):
            adapters[f"blocks.{i}.{part}.weight"] = _LoRALinear(
                getattr(block, part), spec.lora_rank, gen
            )
    lora_params = [p for a in adapters.values() for p in (a.A, a.B)]
    loss = _train(
        lora_model, shifted, spec, spec.finetune_steps, 3 * spec.finetune_lr, params=lora_params
    )
    merged = dict(base)
    for name, adapter in adapters.items():
        merged[name] = adapter.merged_weight().contiguous().numpy()
    members["lora-merged"] = merged
    log(f"  family: LoRA (rank {spec.lora_rank}) loss {loss:.3f}")

    edit = dict(base)
    target = f"blocks.{spec.n_layers // 2}.out.weight"
    w = torch.from_numpy(base[target])
    u = torch.randn(w.shape[0], 1, generator=gen) * 0.01
    v = torch.randn(1, w.shape[1], generator=gen)
    edit[target] = (w + u @ v).contiguous().numpy()
    members["one-tensor-edit"] = edit

    names = list(members)
    desc = (
        "base = trajectory's last checkpoint; full FT, last-layers FT (last block + ln_f + head), "
        f"merged LoRA r={spec.lora_rank} on qkv/proj, rank-1 edit of {target}; "
        f"{spec.finetune_steps} steps each on a shifted source"
    )
    return Corpus(
        "family-fp32",
        desc,
        names,
        [members[n] for n in names],
        [None, 0, 0, 0, 0],
        {"edited_tensor": target},
    )


def build_corpora(cache: Path, scale: float = 1.0, log=print) -> list[Corpus]:
    """trajectory-fp32, trajectory-bf16 and family-fp32, trained on first use and cached after."""
    import torch

    torch.set_num_threads(1)  # small matmuls: a second thread only adds contention on 2 cores
    spec = ModelSpec.scaled(scale)
    root = cache / "corpora" / f"scale{scale:g}"
    wanted = ("trajectory-fp32", "trajectory-bf16", "family-fp32")
    loaded = [_load_corpus(root / n, spec) for n in wanted]
    if all(c is not None for c in loaded):
        return [c for c in loaded if c is not None]
    log(f"building corpora at scale {scale:g} (d_model={spec.d_model}, layers={spec.n_layers}) ...")
    traj, model = _train_trajectory(spec, log)
    bf16 = Corpus(
        "trajectory-bf16",
        traj.description + " (bf16 copies)",
        traj.names,
        [to_bf16(ck) for ck in traj.checkpoints],
        traj.references,
        traj.info,
    )
    family = _finetune_family(spec, model, log)
    for corpus in (traj, bf16, family):
        _save_corpus(corpus, root / corpus.name, spec)
    return [traj, bf16, family]
