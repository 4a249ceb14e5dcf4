"""Training overhead benchmark: what checkpointing costs a training loop, Coral beside torch.save.

    python -m benchmarks.training_overhead [--steps 300] [--every 50] [--device cpu|cuda]
                                           [--d-model 256] [--layers 4] [--out bench-out]

The same training loop (a small GPT-style transformer on synthetic tokens, AdamW) runs, in one
process, side by side:

- none:          no checkpoints (the baseline);
- torch.save:    `torch.save({"model": ..., "optimizer": ...}, f"ckpt-{step}.pt")` every N steps;
- coral (async): `CheckpointManager(..., CheckpointConfig(every_n_steps=N))` — model, optimizer
                 and RNG state, committed on a background thread;
- coral (sync):  the same with `async_commit=False` (every commit on the training thread).

Reported per mode (median of `--repeats` runs, the modes interleaved): the loop's wall time and
ms per step, the overhead over the baseline (loop time / baseline - 1), the time the training
thread spent inside checkpoint calls per checkpoint (for Coral async: the copy of the tensors;
for torch.save: the whole save), the time the background writer still needed after the loop
(drain), and the bytes on disk, also as a fraction of torch.save's. On a busy CPU-only machine
the background writer's hashing and compression compete with training for the cores; on a GPU
machine they run on otherwise idle CPU. Results also go to `<out>/training_overhead.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    mode: str
    loop_s: float  # median over repeats
    steps: int
    drain_s: float
    stored_bytes: int
    checkpoints: int
    blocking_s: float  # time the training thread spent inside checkpoint calls (median)

    @property
    def ms_per_step(self) -> float:
        return self.loop_s / self.steps * 1e3

    @property
    def blocking_ms_per_checkpoint(self) -> float:
        return self.blocking_s / self.checkpoints * 1e3 if self.checkpoints else 0.0


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _build(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import torch
    from torch import nn

    torch.manual_seed(0)

    class TinyGPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = args.d_model
            self.tok = nn.Embedding(args.vocab, d)
            self.pos = nn.Parameter(torch.zeros(args.context, d))
            layer = nn.TransformerEncoderLayer(
                d, max(2, d // 64), 4 * d, dropout=0.1, batch_first=True, norm_first=True
            )
            self.blocks = nn.TransformerEncoder(layer, args.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, args.vocab, bias=False)
            self.head.weight = self.tok.weight  # tied, as in GPT-2
            self.register_buffer(
                "mask", nn.Transformer.generate_square_subsequent_mask(args.context)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.tok(x) + self.pos[: x.shape[1]]
            return self.head(self.norm(self.blocks(h, mask=self.mask, is_causal=True)))

    device = torch.device(args.device)
    model = TinyGPT().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    # a fixed Markov-ish token source: each token depends on the previous one
    table = torch.randint(
        0, args.vocab, (args.vocab, 4), generator=torch.Generator().manual_seed(1)
    ).to(device)
    return model, opt, table


def _batch(args: argparse.Namespace, table: Any) -> Any:
    import torch

    x = torch.empty(args.batch, args.context, dtype=torch.long, device=table.device)
    x[:, 0] = torch.randint(0, args.vocab, (args.batch,), device=table.device)
    choice = torch.randint(0, 4, (args.batch, args.context), device=table.device)
    for t in range(1, args.context):
        x[:, t] = table[x[:, t - 1], choice[:, t]]
    return x


def _train(args: argparse.Namespace, mode: str, work: Path) -> Row:
    import torch

    from coral.training import CheckpointConfig, CheckpointManager
    from coral.version_control.repository import Repository

    model, opt, table = _build(args)
    batches = [_batch(args, table) for _ in range(8)]
    sync = (lambda: torch.cuda.synchronize()) if args.device.startswith("cuda") else (lambda: None)

    def step_once(i: int) -> None:
        x = batches[i % len(batches)]
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, args.vocab), x[:, 1:].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(args.warmup):
        step_once(i)
    sync()

    folder = work / mode.replace(" ", "_").replace("(", "").replace(")", "").replace(".", "_")
    folder.mkdir(parents=True)
    manager = None
    repo = None
    if mode.startswith("coral"):
        repo = Repository.init(folder / "repo")
        cfg = CheckpointConfig(
            every_n_steps=args.every, async_commit=mode == "coral (async)", max_queue=2
        )
        manager = CheckpointManager(repo, model, opt, config=cfg)

    saves = 0
    blocking = 0.0
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        step_once(step)
        t = time.perf_counter()
        if mode == "torch.save" and step % args.every == 0:
            torch.save(
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step},
                folder / f"ckpt-{step}.pt",
            )
            saves += 1
        elif manager is not None and manager.step(step):
            saves += 1
        blocking += time.perf_counter() - t
    sync()
    loop = time.perf_counter() - start
    drain = 0.0
    if manager is not None:
        t = time.perf_counter()
        manager.close()
        drain = time.perf_counter() - t
        assert len(manager.list_checkpoints()) == saves
    stored = (
        _dir_bytes(folder / "repo" / ".coral" / "objects")
        if repo is not None
        else _dir_bytes(folder)
    )
    if repo is not None:
        repo.close()
    return Row(mode, loop, args.steps, drain, stored, saves, blocking)


def run(args: argparse.Namespace) -> list[Row]:
    import torch

    if args.device == "cpu":  # leave a core for the background writer
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    runs: dict[str, list[Row]] = {m: [] for m in args.modes}
    for _ in range(args.repeats):  # modes interleaved, so a busy moment hits every mode alike
        for mode in args.modes:
            work = Path(tempfile.mkdtemp(prefix="coral-train-bench-"))
            try:
                runs[mode].append(_train(args, mode, work))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    rows = []
    for rs in runs.values():
        mid = sorted(rs, key=lambda x: x.loop_s)[len(rs) // 2]
        mid.blocking_s = statistics.median(x.blocking_s for x in rs)
        rows.append(mid)
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> str:
    base = next((r for r in rows if r.mode == "none"), None)
    ts = next((r for r in rows if r.mode == "torch.save"), None)
    lines = [
        f"training overhead: {args.steps} steps, checkpoint every {args.every}, "
        f"device {args.device}, d_model {args.d_model}, {args.layers} layers",
        f"(median of {args.repeats} interleaved runs)",
        f"{'mode':<15}{'loop s':>9}{'ms/step':>9}{'overhead':>10}{'block ms/ckpt':>15}"
        f"{'drain s':>9}{'ckpts':>7}{'stored':>12}{'vs torch.save':>15}",
    ]
    for r in rows:
        over = f"{(r.loop_s / base.loop_s - 1) * 100:+.1f}%" if base and r is not base else ""
        vs = (
            f"{r.stored_bytes / ts.stored_bytes:.3f}x"
            if ts and ts.stored_bytes and r.stored_bytes
            else ""
        )
        block = f"{r.blocking_ms_per_checkpoint:.1f}" if r.checkpoints else ""
        lines.append(
            f"{r.mode:<15}{r.loop_s:>9.2f}{r.ms_per_step:>9.2f}{over:>10}{block:>15}{r.drain_s:>9.2f}"
            f"{r.checkpoints:>7}{_human(r.stored_bytes):>12}{vs:>15}"
        )
    if base and ts:
        coral = next((r for r in rows if r.mode == "coral (async)"), None)
        if coral and ts.blocking_s > 0:
            lines.append(
                "coral (async) blocks the training thread "
                f"{coral.blocking_s / ts.blocking_s:.2f}x as "
                f"long as torch.save; loop overhead {coral.loop_s - base.loop_s:+.2f}s vs "
                f"{ts.loop_s - base.loop_s:+.2f}s"
            )
    return "\n".join(lines)


def _human(n: int) -> str:
    if n <= 0:
        return "-"
    units = ["B", "KiB", "MiB", "GiB"]
    i = min(len(units) - 1, int(math.log(n, 1024)))
    return f"{n / 1024**i:.1f} {units[i]}"


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--context", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--modes", nargs="+", default=["none", "torch.save", "coral (async)", "coral (sync)"]
    )
    parser.add_argument("--out", default="bench-out")
    args = parser.parse_args(argv)
    rows = run(args)
    text = report(rows, args)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_overhead.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "machine": platform.platform(),
                "rows": [asdict(r) | {"ms_per_step": r.ms_per_step} for r in rows],
            },
            indent=2,
        )
    )
    return rows


if __name__ == "__main__":
    main()
