"""`coral import`: stage a checkpoint file or model folder and commit it, in one step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral.errors import CoralError, NothingToCommitError
from coral.porcelain.add import AddResult, Advance, LoadedCheckpoint, add_paths, load_paths
from coral.porcelain.provenance import hf_base_name
from coral.version_control.provenance import PROVENANCE_KEY, base_record, read_provenance
from coral.version_control.repository import Repository


@dataclass
class ImportResult:
    commit_hash: str
    message: str
    added: AddResult


def import_checkpoint(
    repo: Repository,
    path: Path,
    *,
    message: str | None = None,
    author: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    prefix: str = "",
    replace: bool = False,
    progress: Advance | None = None,
    loaded: LoadedCheckpoint | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> ImportResult:
    """Stage `path` (tensors and, for a folder, its model files) and commit it; the commit
    records where it came from under metadata["import"], and `provenance` (what
    `provenance_for` returns: base, config, datasets) under metadata["provenance"]; without
    a base, a Hugging Face folder's `_name_or_path` (config.json) is recorded as the base."""
    ckpt = loaded if loaded is not None else load_paths([path], prefix)[0]
    if not ckpt.weights:
        raise CoralError(
            f"no tensors found in {path}",
            hint="check that the checkpoint holds tensors (a state_dict)",
        )
    added = add_paths(
        repo, [path], prefix=prefix, replace=replace, progress=progress, loaded=[ckpt]
    )
    info: dict[str, Any] = {
        "source": str(path),
        "format": ckpt.format,
        "files": [str(f) for f in ckpt.sources],
    }
    if ckpt.metadata:
        info["metadata"] = ckpt.metadata
    metadata: dict[str, Any] = {"import": info}
    if metrics:
        metadata["metrics"] = dict(metrics)
    record = read_provenance(provenance or {})
    hf_base = hf_base_name(ckpt.files.get("config.json"))
    if "base" not in record and hf_base:
        record["base"] = base_record(name=hf_base, source="config.json")
    if record:
        metadata[PROVENANCE_KEY] = record
    msg = message or f"Import {path}"
    try:
        commit_hash = repo.commit(msg, author=author, metadata=metadata, allow_empty=False)
    except NothingToCommitError:
        raise NothingToCommitError(
            f"{path} holds the same tensors and files as HEAD: nothing to commit",
            hint="HEAD already holds them (`coral show HEAD` lists them)"
            + ("; --replace also removes HEAD tensors the checkpoint lacks" if not replace else ""),
        ) from None
    return ImportResult(commit_hash, msg, added)
