"""`coral import-wandb`: the checkpoints of a local Weights & Biases run as commits.

Reads local files only, never the network. A run directory (`wandb/run-<date>-<id>`, or
`wandb/` itself when `latest-run` or a single run is in it) keeps what `wandb.save` saved under
`files/`, beside `config.yaml` ({key: {value: ..., desc: ...}}), `wandb-summary.json` (the final
metrics) and, for older runs, `wandb-history.jsonl` (the logged rows). A downloaded artifact
directory holds the files themselves. Every checkpoint file (.safetensors, .pt/.pth/.ckpt, .npz,
.h5, .keras) becomes one commit on the branch, and so does a sharded checkpoint (a Hugging Face
`*.safetensors.index.json` with its shards), in the order of the step in its name
(`epoch=2-step=300.ckpt`, `model-step2.pt`) or its folder's (`checkpoint-300/`), else of
modification time. Each commit records the
run's config under "config", the metrics logged at its step (the summary for the last one)
under "metrics", and the run under "wandb". Torch checkpoints are taken apart as
`coral import-pytorch` does (optimizer state as training state). Importing a run again commits
only the checkpoints the branch does not hold yet.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral.errors import CoralError, InvalidFileError, NothingToCommitError
from coral.integrations.formats.torch_format import SUFFIXES as TORCH_SUFFIXES
from coral.porcelain.import_pytorch import commit_metadata, read_torch_checkpoint, record_checkpoint
from coral.porcelain.model_files import WEIGHT_INDEXES
from coral.training.commit import branch_for, commit_weights
from coral.version_control.repository import Repository

WANDB_KEY = "wandb"  # commit metadata key: run id, run directory, file, step
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".npz", ".h5", ".keras")
_RUN_DIR = re.compile(r"^(?:offline-)?run-\d{8}_\d{6}-(?P<id>[A-Za-z0-9]+)$")
_STEP = re.compile(r"(?:global_step|step|iteration|iter|it)[=_-]?(\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+")
_SHARD = re.compile(r"-\d+-of-\d+\.")
_METADATA_KEYS = ("program", "codePath", "startedAt", "host", "python", "args", "git")

Advance = Callable[[int], None]


@dataclass
class RunCheckpoint:
    """One checkpoint file of a run, and where in the run it was saved."""

    path: Path
    relpath: str  # relative to the run's files folder
    step: int | None  # from the file's name
    mtime: float


@dataclass
class WandbRun:
    """What a local W&B run (or artifact) directory holds."""

    path: Path
    files: Path
    run_id: str
    kind: str  # "run" or "artifact"
    config: dict[str, Any]
    summary: dict[str, float]
    history: list[dict[str, Any]]
    metadata: dict[str, Any]
    checkpoints: list[RunCheckpoint]

    def metrics_at(self, step: int | None, last: bool) -> dict[str, float]:
        """The metrics logged at or before `step` (history rows), the summary on the last."""
        out: dict[str, float] = {}
        if step is not None:
            for row in self.history:
                at = row.get("_step")
                if isinstance(at, (int, float)) and at <= step:
                    out.update(_numbers(row))
        if last:
            out.update(self.summary)
        return out


@dataclass
class WandbCommit:
    commit_hash: str
    file: str
    step: int | None
    metrics: dict[str, float]


@dataclass
class WandbImportResult:
    run_dir: str
    run_id: str
    kind: str
    branch: str
    commits: list[WandbCommit] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files the branch already holds
    config_keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "run_id": self.run_id,
            "kind": self.kind,
            "branch": self.branch,
            "commits": [c.__dict__ for c in self.commits],
            "skipped": self.skipped,
            "config_keys": self.config_keys,
        }


def read_wandb_run(path: Path) -> WandbRun:
    """Find a run's files, config, metrics and checkpoint files (nothing is loaded yet)."""
    root = _run_root(Path(path))
    files = root / "files" if (root / "files").is_dir() else root
    kind = "run" if files != root else "artifact"
    match = _RUN_DIR.match(root.resolve().name)
    run_id = match.group("id") if match else root.resolve().name
    checkpoints = _checkpoints(files)
    if not checkpoints:
        raise CoralError(
            f"no checkpoint files in {files}",
            hint="W&B keeps what wandb.save() saved under the run's files/ folder; checkpoints "
            f"end in {', '.join(CHECKPOINT_SUFFIXES)}",
        )
    meta = _json(files / "wandb-metadata.json")
    return WandbRun(
        path=root,
        files=files,
        run_id=run_id,
        kind=kind,
        config=_config(files / "config.yaml"),
        summary=_numbers(_json(files / "wandb-summary.json")),
        history=_history(files / "wandb-history.jsonl"),
        metadata={k: meta[k] for k in _METADATA_KEYS if k in meta},
        checkpoints=checkpoints,
    )


def import_wandb(
    repo: Repository,
    path: Path,
    *,
    branch: str | None = None,
    author: str | None = None,
    progress: Advance | None = None,
    run: WandbRun | None = None,
) -> WandbImportResult:
    """Commit each checkpoint of a local W&B run onto `branch` (default: HEAD's), oldest first.

    Checkpoints the branch already holds from this run are skipped; NothingToCommitError when
    that is all of them."""
    run = run if run is not None else read_wandb_run(Path(path))
    name = branch_for(repo, branch)
    done = _imported(repo, name, run.run_id)
    result = WandbImportResult(str(run.path), run.run_id, run.kind, name)
    result.config_keys = sorted(run.config)
    todo = [c for c in run.checkpoints if c.relpath not in done]
    result.skipped = [c.relpath for c in run.checkpoints if c.relpath in done]
    if not todo:
        raise NothingToCommitError(
            f"every checkpoint of run {run.run_id} is on {name!r} already "
            f"({len(run.checkpoints)} commits)",
            hint="import it into another branch with --branch NAME",
        )
    for ckpt in todo:
        last = ckpt is run.checkpoints[-1]
        result.commits.append(_commit_one(repo, run, ckpt, name, author, last))
        if progress is not None:
            progress(1)
    return result


def _commit_one(
    repo: Repository,
    run: WandbRun,
    ckpt: RunCheckpoint,
    branch: str,
    author: str | None,
    last: bool,
) -> WandbCommit:
    wandb_info: dict[str, Any] = {
        "run_id": run.run_id,
        "run_dir": str(run.path),
        "kind": run.kind,
        "file": ckpt.relpath,
        **({"run": run.metadata} if run.metadata else {}),
    }
    extra: dict[str, Any] = {WANDB_KEY: wandb_info}
    if run.config:
        extra["config"] = run.config
    step = ckpt.step
    suffix = ckpt.path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        torch_ckpt = read_torch_checkpoint(ckpt.path)
        step = torch_ckpt.step if torch_ckpt.step or step is None else step
        metrics = {**run.metrics_at(step, last), **torch_ckpt.metrics}
        torch_ckpt.metrics = metrics
        weights: Mapping[str, Any] = torch_ckpt.snapshot.to_weights()
        meta = commit_metadata(torch_ckpt, extra)
        epoch = torch_ckpt.epoch
    else:
        weights = _load_weights(ckpt.path)
        metrics = run.metrics_at(step, last)
        fmt = "keras-h5" if suffix == ".h5" else suffix.lstrip(".")
        if ckpt.path.name.endswith(WEIGHT_INDEXES):
            fmt = "sharded"
        meta = {"import": {"source": str(ckpt.path), "format": fmt}, **extra}
        if metrics:
            meta["metrics"] = metrics
        epoch = None
    wandb_info["step"] = step  # (the dict inside `meta`)
    message = f"W&B {run.kind} {run.run_id}: {ckpt.relpath}" + (
        f" (step {step})" if step is not None else ""
    )
    commit_hash = commit_weights(
        repo, weights, message, branch=branch, author=author, metadata=meta
    )
    record_checkpoint(repo, commit_hash, branch, step or 0, epoch, metrics)
    return WandbCommit(commit_hash, ckpt.relpath, step, metrics)


def _load_weights(path: Path) -> Mapping[str, Any]:
    if path.suffix.lower() == ".h5":
        from coral.integrations.tensorflow_io import load_keras_h5

        return load_keras_h5(path)
    from coral.integrations.formats import load_checkpoint

    weights = load_checkpoint(path).weights
    if not weights:
        raise InvalidFileError(f"{path}: holds no tensors")
    return weights


def _run_root(path: Path) -> Path:
    """The run directory `path` names: itself, or the one run in a `wandb/` folder."""
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", str(path))
    if not path.is_dir():
        raise CoralError(
            f"{path} is not a directory",
            hint="pass a W&B run directory (wandb/run-...) or a downloaded artifact folder; "
            "for a single checkpoint file use `coral import-pytorch` or `coral import`",
        )
    if (path / "files").is_dir():
        return path
    if (path / "latest-run").is_dir():
        return path / "latest-run"
    runs = sorted(p for p in path.iterdir() if p.is_dir() and _RUN_DIR.match(p.name))
    if len(runs) == 1:
        return runs[0]
    if runs:
        raise CoralError(
            f"{path} holds {len(runs)} runs",
            hint=f"pass one of them, e.g. {runs[-1]}",
        )
    return path  # an artifact directory: checkpoint files in it


def _step_of(name: str) -> int | None:
    match = _STEP.search(name)
    if match:
        return int(match.group(1))
    numbers = _NUMBER.findall(Path(name).stem)
    return int(numbers[-1]) if numbers else None


def _checkpoints(files: Path) -> list[RunCheckpoint]:
    """Every checkpoint under `files`: a file, or a sharded checkpoint (a Hugging Face
    `*.safetensors.index.json` / `*.bin.index.json` with its shards, one checkpoint)."""
    found = []
    sharded = _sharded(files)
    in_shards = {shard for shards in sharded.values() for shard in shards}
    for index, shards in sharded.items():
        rel = index.relative_to(files).as_posix()
        mtime = max((s.stat().st_mtime for s in shards), default=index.stat().st_mtime)
        found.append(RunCheckpoint(index, rel, _step_of_path(index), mtime))
    for p in files.rglob("*"):
        if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES and p not in in_shards:
            rel = p.relative_to(files).as_posix()
            found.append(RunCheckpoint(p, rel, _step_of_path(p), p.stat().st_mtime))
    if all(c.step is not None for c in found):
        found.sort(key=lambda c: (c.step, c.mtime, c.relpath))
    else:
        found.sort(key=lambda c: (c.mtime, c.relpath))
    return found


def _sharded(files: Path) -> dict[Path, list[Path]]:
    """Index file -> its shard files, for every Hugging Face sharded checkpoint under `files`
    (an index that is not valid JSON is left to the import, which names it)."""
    found: dict[Path, list[Path]] = {}
    for index in sorted(files.rglob("*.index.json")):
        if not index.name.endswith(WEIGHT_INDEXES):
            continue
        weight_map = _json(index).get("weight_map")
        shards = weight_map.values() if isinstance(weight_map, dict) else ()
        found[index] = [index.parent / str(s) for s in dict.fromkeys(shards)]
    return found


def _step_of_path(path: Path) -> int | None:
    """The step in a checkpoint's name, else in its folder's (`checkpoint-300/`); none for
    an index or a shard (`model-00001-of-00002`) whose name holds only shard numbers."""
    if not path.name.endswith(WEIGHT_INDEXES) and not _SHARD.search(path.name):
        step = _step_of(path.name)
        if step is not None:
            return step
    return _step_of(path.parent.name) if path.parent.name else None


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidFileError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _config(path: Path) -> dict[str, Any]:
    """W&B's config.yaml without its bookkeeping: {key: value}."""
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidFileError(
            f"{path}: not valid YAML ({exc})", hint="W&B writes it; copy it again from the run"
        ) from None
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    for key, entry in data.items():
        if str(key).startswith("_wandb") or key == "wandb_version":
            continue
        out[str(key)] = entry["value"] if isinstance(entry, dict) and "value" in entry else entry
    return json.loads(json.dumps(out, default=str))  # dates and the like as text


def _history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _numbers(row: Mapping[str, Any]) -> dict[str, float]:
    """The numeric, user-logged entries of a summary or history row (no `_step`, `_runtime`)."""
    return {
        str(k): float(v)
        for k, v in row.items()
        if not str(k).startswith("_")
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
    }


def _imported(repo: Repository, branch: str, run_id: str) -> set[str]:
    """Files of run `run_id` already committed on `branch`."""
    if repo.refs.branch_tip(branch) is None:
        return set()
    done = set()
    for commit in repo.log(branch=branch):
        info = commit.metadata.get(WANDB_KEY)
        if isinstance(info, Mapping) and info.get("run_id") == run_id:
            done.add(str(info.get("file")))
    return done
