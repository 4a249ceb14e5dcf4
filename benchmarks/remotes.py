"""Remote benchmark: Coral push / clone / pull against a real S3 server (SeaweedFS on loopback),
beside uploading and downloading the same checkpoints as safetensors files with the same
library (s3fs) and the same concurrency.

    python -m benchmarks.remotes [--scale 1] [--out bench-out] [--corpus trajectory-fp32]

Measured, one run, side by side:
- first push of the whole history vs uploading every checkpoint file;
- incremental push of one commit that fine-tunes one layer: bytes moved vs the bytes Coral
  stores for that commit (target <= 1.2x), and vs uploading that checkpoint file;
- clone of the whole history vs downloading every checkpoint file;
- pull of one new commit into the clone vs downloading that one checkpoint file.
Targets: incremental push <= 1.2x the commit's stored bytes; first push and clone within 1.5x
the plain transfer's time while moving fewer bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.corpora import build_corpora

STREAMS = 8


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def _save_checkpoints(corpus: Any, folder: Path) -> list[Path]:
    import torch
    from safetensors.torch import save_file

    paths = []
    for i, ck in enumerate(corpus.checkpoints):
        path = folder / f"{i:02d}.safetensors"
        tensors = {
            k: torch.from_numpy(v.view(np.int16)).view(torch.bfloat16)
            if v.dtype.name == "bfloat16"
            else torch.from_numpy(v)
            for k, v in ck.items()
        }
        save_file(tensors, str(path))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--corpus", default="trajectory-fp32")
    args = parser.parse_args(argv)

    import s3fs
    from rich.console import Console
    from rich.table import Table

    from coral.remotes.remote import Remote, RemoteConfig
    from coral.version_control.repository import Repository
    from tests.servers.seaweedfs import seaweedfs_server

    console = Console(width=120)
    corpus = next(
        c for c in build_corpora(args.out, args.scale, log=console.print) if c.name == args.corpus
    )
    work = Path(tempfile.mkdtemp(prefix="coral-bench-remotes-"))
    rows: dict[str, dict[str, Any]] = {}
    try:
        gen = seaweedfs_server(work / "weed")
        server = gen.__enter__()
        try:
            bucket = server.create_bucket()
            fs = s3fs.S3FileSystem(
                key=server.access_key,
                secret=server.secret_key,
                client_kwargs={"endpoint_url": server.endpoint, "region_name": server.region},
                config_kwargs={"s3": {"addressing_style": "path"}},
            )
            files = _save_checkpoints(corpus, _mk(work / "files"))
            history, last = files[:-1], files[-1]

            def upload(paths: list[Path], prefix: str) -> int:
                with ThreadPoolExecutor(STREAMS) as pool:
                    list(pool.map(lambda p: fs.put(str(p), f"{bucket}/{prefix}/{p.name}"), paths))
                return sum(p.stat().st_size for p in paths)

            def download(paths: list[Path], prefix: str, dest: Path) -> int:
                with ThreadPoolExecutor(STREAMS) as pool:
                    list(
                        pool.map(
                            lambda p: fs.get(f"{bucket}/{prefix}/{p.name}", str(dest / p.name)),
                            paths,
                        )
                    )
                return sum((dest / p.name).stat().st_size for p in paths)

            t, n = _timed(lambda: upload(history, "plain"))
            rows["first push"] = {"plain_s": t, "plain_bytes": n}
            t, n = _timed(lambda: upload([last], "plain"))
            rows["incremental push"] = {"plain_s": t, "plain_bytes": n}
            t, n = _timed(lambda: download([*history, last], "plain", _mk(work / "dl-all")))
            rows["clone"] = {"plain_s": t, "plain_bytes": n}
            t, n = _timed(lambda: download([last], "plain", _mk(work / "dl-one")))
            rows["pull one commit"] = {"plain_s": t, "plain_bytes": n}

            config = RemoteConfig(
                name="origin",
                url=f"s3://{bucket}/coral",
                backend="s3",
                region=server.region,
                endpoint_url=server.endpoint,
                access_key=server.access_key,
                secret_key=server.secret_key,
            )
            repo = Repository.init(work / "a")
            for i, ck in enumerate(corpus.checkpoints[:-1]):
                repo.add_all_weights(ck)
                repo.commit(f"checkpoint {i}")
            repo.store.wait_for_maintenance()
            remote = Remote.from_config(config)
            t, res = _timed(lambda: remote.push(repo))
            rows["first push"].update(coral_s=t, coral_bytes=res.bytes_transferred)
            # one commit that fine-tunes one layer of the newest checkpoint
            tuned = dict(corpus.checkpoints[-2])
            name = max(tuned, key=lambda k: tuned[k].size)
            rng = np.random.default_rng(0)
            tuned[name] = (
                tuned[name]
                + rng.standard_normal(tuned[name].shape).astype(tuned[name].dtype)
                * np.asarray(1e-4, tuned[name].dtype)
            ).astype(tuned[name].dtype)
            repo.add_all_weights({name: tuned[name]})
            repo.commit("fine-tune one layer")
            repo.store.wait_for_maintenance()
            stored = repo.storage_history()[-1]["stored_bytes"]  # the newest commit
            t, res = _timed(lambda: remote.push(repo))
            rows["incremental push"].update(
                coral_s=t, coral_bytes=res.bytes_transferred, commit_stored_bytes=stored
            )
            clone = Repository.init(work / "b")
            t, res = _timed(lambda: Remote.from_config(config).pull(clone))
            rows["clone"].update(coral_s=t, coral_bytes=res.bytes_transferred)
            repo.add_all_weights(corpus.checkpoints[-1])
            repo.commit("newest")
            repo.store.wait_for_maintenance()
            remote.push(repo)
            t, res = _timed(lambda: Remote.from_config(config).pull(clone))
            rows["pull one commit"].update(coral_s=t, coral_bytes=res.bytes_transferred)
            repo.close()
            clone.close()
        finally:
            gen.__exit__(None, None, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = Table(
        title=f"remotes on SeaweedFS: {corpus.name} ({corpus.raw_bytes / 1e6:.0f} MB raw)"
    )
    for col in (
        "operation",
        "Coral MB",
        "plain MB",
        "bytes ratio",
        "Coral s",
        "plain s",
        "time ratio",
    ):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for op, r in rows.items():
        table.add_row(
            op,
            f"{r['coral_bytes'] / 1e6:.2f}",
            f"{r['plain_bytes'] / 1e6:.2f}",
            f"{r['coral_bytes'] / r['plain_bytes']:.2f}",
            f"{r['coral_s']:.2f}",
            f"{r['plain_s']:.2f}",
            f"{r['coral_s'] / r['plain_s']:.2f}x",
        )
    console.print(table)
    inc = rows["incremental push"]
    console.print(
        f"incremental push moved {inc['coral_bytes'] / max(1, inc['commit_stored_bytes']):.2f}x "
        f"the bytes Coral stores for that commit (target <= 1.2x)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "remotes.json").write_text(json.dumps(rows, indent=2))
    return 0


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
