"""`ModelPublisher`: publish a commit's weights to the Hugging Face Hub, an MLflow Model Registry
or a local folder, and remember every attempt in the repository's publishing history.

Publishing never raises for a failure a user can meet (unknown ref, no network, bad token,
missing repository, unsupported dtype): it returns a `PublishResult` with `success=False` and
`error` saying why, and records it like a success.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from coral.core.redact import redact_text
from coral.errors import CoralError
from coral.registry.errors import ExportFormatError, ExportTargetError, MlflowPublishError
from coral.registry.history import PublishHistory
from coral.registry.snapshot import (
    DEFAULT_MAX_SHARD_BYTES,
    EXPORT_FORMATS,
    METADATA_FILE,
    WEIGHTS_STEM,
    CommitSnapshot,
)
from coral.registry.types import PublishResult, RegistryType
from coral.version_control.audit import current_actor, record_safely
from coral.version_control.repository import Repository

HISTORY_COMMITS = 10  # commits listed in a model card's version history

# Files a local export writes; a re-export into the same folder replaces exactly these.
_EXPORT_FILE = re.compile(
    rf"^(?:{WEIGHTS_STEM}\.(?:safetensors|pt|npz)|{WEIGHTS_STEM}-\d{{5}}-of-\d{{5}}\.safetensors"
    rf"|{WEIGHTS_STEM}\.safetensors\.index\.json|{re.escape(METADATA_FILE)})$"
)


class ModelPublisher:
    """Publishes commits of `repo`. `on_progress`, if given, receives one short line per step
    (the CLI shows them); `max_shard_bytes` is where safetensors output is split into shards."""

    def __init__(
        self,
        repo: Repository,
        *,
        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.repo = repo
        self.max_shard_bytes = max_shard_bytes
        self.on_progress = on_progress
        self.history = PublishHistory(repo.database)

    # -- Hugging Face Hub ------------------------------------------------------------------------
    def publish_huggingface(
        self,
        repo_id: str,
        commit_ref: str = "HEAD",
        private: bool = False,
        description: str | None = None,
        base_model: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        token: str | None = None,
        *,
        include_training_state: bool = False,
    ) -> PublishResult:
        """Upload `commit_ref` to the Hub repository `repo_id` (created if missing) as
        `model.safetensors` (sharded above the limit), a generated `README.md` model card and
        `coral_metadata.json`. The token is `token`, else `HF_TOKEN`; the endpoint `HF_ENDPOINT`.
        A training checkpoint's optimizer/RNG state is left out unless `include_training_state`
        (see `CommitSnapshot.load`)."""
        from coral.registry import hf_hub

        def publish(snap: CommitSnapshot, meta: dict[str, Any]) -> PublishResult:
            from coral.registry.model_card import build_model_card

            resolved_token = hf_hub.resolve_token(token)
            all_metrics = snap.metrics(metrics)
            with tempfile.TemporaryDirectory(prefix="coral-hf-") as tmp:
                folder = Path(tmp)
                self._progress(f"writing {snap.weight_count} tensors as safetensors")
                files = [
                    p.name for p in snap.write_weights(folder, "safetensors", self.max_shard_bytes)
                ]
                files += snap.write_model_files(folder, skip=[METADATA_FILE, "README.md"])
                files += [METADATA_FILE, "README.md"]
                snap.write_metadata(
                    folder,
                    snap.coral_metadata(
                        metrics,
                        registry=RegistryType.HUGGINGFACE.value,
                        repo_id=repo_id,
                        base_model=base_model,
                        files=files,
                    ),
                )
                card = build_model_card(
                    repo_id,
                    snap,
                    description=description,
                    base_model=base_model,
                    metrics=all_metrics,
                    tags=tags,
                    files=files,
                    history=self.repo.log(
                        max_commits=HISTORY_COMMITS, branch=snap.commit.commit_hash
                    ),
                )
                card.save(folder / "README.md")
                self._progress(f"uploading {len(files)} files to {hf_hub.hub_endpoint()}/{repo_id}")
                upload = hf_hub.upload_folder(
                    folder,
                    repo_id,
                    token=resolved_token,
                    private=private,
                    commit_message=f"Coral {snap.commit.short_hash}: "
                    f"{_first_line(snap.commit.message)}",
                    commit_description=description or "",
                )
            meta.update(
                files=files,
                hub_commit=upload.commit_oid,
                commit_url=upload.commit_url,
                endpoint=upload.endpoint,
                private=private,
                metrics=all_metrics,
                base_model=base_model,
                hub_tags=list(tags or []),
            )
            return PublishResult(
                True,
                RegistryType.HUGGINGFACE,
                repo_id,
                version=upload.commit_oid,
                url=upload.url,
                metadata=meta,
            )

        return self._publish(
            RegistryType.HUGGINGFACE, repo_id, commit_ref, publish, include_training_state
        )

    # -- MLflow ----------------------------------------------------------------------------------
    def publish_mlflow(
        self,
        model_name: str,
        commit_ref: str = "HEAD",
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        *,
        include_training_state: bool = False,
    ) -> PublishResult:
        """Log `commit_ref` as an MLflow run (params, metrics, the weights and
        `coral_metadata.json` as artifacts) and register it as a new version of `model_name`.
        `result.version` is the model version; `result.metadata["run_id"]` the run. A training
        checkpoint's optimizer/RNG state is left out unless `include_training_state`."""
        from coral.registry import mlflow_registry

        def publish(snap: CommitSnapshot, meta: dict[str, Any]) -> PublishResult:
            all_metrics = snap.metrics(metrics)
            coral_tags = {
                "coral.commit": snap.commit.commit_hash,
                "coral.commit_ref": commit_ref,
                **({"coral.branch": snap.branch} if snap.branch else {}),
                **({"coral.tags": ",".join(snap.tags)} if snap.tags else {}),
            }
            user_tags = {str(k): str(v) for k, v in (tags or {}).items()}
            with tempfile.TemporaryDirectory(prefix="coral-mlflow-") as tmp:
                folder = Path(tmp)
                self._progress(f"writing {snap.weight_count} tensors as safetensors")
                files = [
                    p.name for p in snap.write_weights(folder, "safetensors", self.max_shard_bytes)
                ]
                files += snap.write_model_files(folder, skip=[METADATA_FILE, "README.md"])
                files.append(METADATA_FILE)
                snap.write_metadata(
                    folder,
                    snap.coral_metadata(
                        metrics,
                        registry=RegistryType.MLFLOW.value,
                        model_name=model_name,
                        files=files,
                    ),
                )
                self._progress(f"logging run and registering {model_name}")
                try:
                    version = mlflow_registry.publish_folder(
                        folder,
                        model_name,
                        tracking_uri=tracking_uri,
                        experiment_name=experiment_name,
                        run_name=f"coral-{snap.commit.short_hash}",
                        params={
                            "coral_commit": snap.commit.commit_hash,
                            "coral_commit_ref": commit_ref,
                            "coral_branch": snap.branch or "",
                            "coral_version": snap.coral_version,
                            "weight_count": snap.weight_count,
                            "parameter_count": snap.parameter_count,
                            "total_bytes": snap.total_bytes,
                            "dtypes": ",".join(f"{k}:{v}" for k, v in snap.dtype_counts().items()),
                            "format": "safetensors",
                        },
                        metrics=all_metrics,
                        run_tags={
                            **coral_tags,
                            **user_tags,
                            "mlflow.note.content": _run_note(snap, description),
                        },
                        version_tags={**coral_tags, **user_tags},
                        description=description,
                    )
                except MlflowPublishError as exc:
                    if exc.run_id:
                        meta["run_id"] = exc.run_id
                    raise
            meta.update(
                run_id=version.run_id,
                experiment_id=version.experiment_id,
                source=version.source,
                tracking_uri=version.tracking_uri,
                files=files,
                metrics=all_metrics,
                mlflow_tags=user_tags,
            )
            return PublishResult(
                True,
                RegistryType.MLFLOW,
                model_name,
                version=version.version,
                url=version.url,
                metadata=meta,
            )

        return self._publish(
            RegistryType.MLFLOW, model_name, commit_ref, publish, include_training_state
        )

    # -- local folder ----------------------------------------------------------------------------
    def publish_local(
        self,
        output_path: str | os.PathLike[str],
        commit_ref: str = "HEAD",
        format: str = "safetensors",
        include_metadata: bool = True,
        *,
        include_training_state: bool = False,
        force: bool = False,
    ) -> PublishResult:
        """Export `commit_ref` into the folder `output_path` as `model.safetensors` (sharded with
        an HF index above the limit), `model.pt` (a state dict for `torch.load(weights_only=True)`)
        or `model.npz`, plus `coral_metadata.json` when `include_metadata`. The folder must be
        new or empty; one holding an earlier export is replaced only with `force=True`, and one
        holding anything else is always refused. A training checkpoint's optimizer/RNG state is
        left out unless `include_training_state`."""
        out = Path(output_path).expanduser().absolute()

        def publish(snap: CommitSnapshot, meta: dict[str, Any]) -> PublishResult:
            if format not in EXPORT_FORMATS:
                raise ExportFormatError(f"unknown export format {format!r}")
            old = _previous_export(out)
            if old and not force:
                names = sorted(p.name for p in old)
                shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                raise ExportTargetError(
                    f"{out} already holds an export ({shown})",
                    hint="pass --force (force=True) to replace it, or choose another folder",
                )
            out.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
            try:
                self._progress(f"writing {snap.weight_count} tensors as {format}")
                files = [
                    p.name
                    for p in snap.write_weights(
                        staging, format, self.max_shard_bytes if format == "safetensors" else None
                    )
                ]
                files += snap.write_model_files(staging, skip=[METADATA_FILE])
                if include_metadata:
                    files.append(METADATA_FILE)
                    snap.write_metadata(
                        staging,
                        snap.coral_metadata(
                            registry=RegistryType.LOCAL.value, format=format, files=files
                        ),
                    )
                out.mkdir(exist_ok=True)
                for path in old:
                    path.unlink(missing_ok=True)
                for name in files:
                    (out / name).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging / name, out / name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            meta.update(
                format=format, files=files, path=str(out), include_metadata=include_metadata
            )
            return PublishResult(
                True,
                RegistryType.LOCAL,
                str(out),
                version=snap.commit.commit_hash,
                url=out.as_uri(),
                metadata=meta,
            )

        return self._publish(
            RegistryType.LOCAL, str(out), commit_ref, publish, include_training_state
        )

    # -- history ---------------------------------------------------------------------------------
    def get_history(
        self,
        registry: RegistryType | None = None,
        success_only: bool = False,
        limit: int | None = None,
    ) -> list[PublishResult]:
        """Past publishes, newest first, optionally only one registry's / only successes."""
        return self.history.query(registry=registry, success_only=success_only, limit=limit)

    def get_latest(
        self, model_name: str, registry: RegistryType | None = None
    ) -> PublishResult | None:
        """The newest successful publish of `model_name` (a local export's name is its folder)."""
        names = [model_name]
        if registry in (None, RegistryType.LOCAL):
            local = str(Path(model_name).expanduser().absolute())
            if local != model_name:
                names.append(local)
        found = [
            r
            for name in names
            for r in self.history.query(
                registry=registry, success_only=True, limit=1, model_name=name
            )
        ]
        return max(found, key=lambda r: r.published_at, default=None)

    # -- shared ----------------------------------------------------------------------------------
    def _progress(self, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(redact_text(message))

    def _publish(
        self,
        registry: RegistryType,
        model_name: str,
        commit_ref: str,
        publish: Callable[[CommitSnapshot, dict[str, Any]], PublishResult],
        include_training_state: bool = False,
    ) -> PublishResult:
        """Resolve the commit, run `publish`, turn any failure into a result, record it."""
        meta: dict[str, Any] = {"commit_ref": commit_ref, "weight_count": 0}
        try:
            self._progress(f"reading commit {commit_ref}")
            snap = CommitSnapshot.load(
                self.repo, commit_ref, include_training_state=include_training_state
            )
            meta.update(snap.summary())
            result = publish(snap, meta)
        except Exception as exc:
            result = PublishResult(
                False, registry, model_name, error=_error_text(exc), metadata=meta
            )
        result = result.redacted()  # nothing with a password in it is returned or stored
        try:
            self.history.record(result)
        except Exception as exc:  # the publish itself happened; do not lose its result
            result.metadata["history_error"] = _error_text(exc)
        record_safely(
            self.repo.database,
            "publish",
            actor=current_actor(self.repo.config),
            target=f"{result.registry.value}:{result.model_name}",
            outcome="ok" if result.success else "failed",
            detail={
                "commit": meta.get("commit_hash"),
                "version": result.version,
                "url": result.url,
                "error": result.error,
            },
        )
        return result


def _previous_export(out: Path) -> list[Path]:
    """The files of an earlier export in `out` (to replace); refuses a folder holding others."""
    if not out.exists():
        return []
    if not out.is_dir():
        raise ExportTargetError(f"{out} exists and is not a folder")
    listed = _listed_files(out)  # model files an earlier export wrote, by its metadata
    entries = list(out.rglob("*"))
    ours = [
        p
        for p in entries
        if p.is_file()
        and (
            (_EXPORT_FILE.match(p.name) and p.parent == out)
            or p.relative_to(out).as_posix() in listed
        )
    ]
    foreign = sorted(
        p.relative_to(out).as_posix() for p in entries if p.is_file() and p not in ours
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ExportTargetError(f"{out} already holds other files ({shown})")
    return ours


def _listed_files(out: Path) -> set[str]:
    try:
        doc = json.loads((out / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return set()
    files = doc.get("files") if isinstance(doc, dict) else None
    return {str(f) for f in files} if isinstance(files, list) else set()


def _first_line(message: str) -> str:
    return (message.strip().splitlines() or [""])[0][:120]


def _run_note(snap: CommitSnapshot, description: str | None) -> str:
    lines = [description.strip(), ""] if description else []
    lines.append(
        f"Published from Coral commit `{snap.commit.short_hash}`"
        + (f" on branch `{snap.branch}`" if snap.branch else "")
        + "."
    )
    lines.append(f"Commit message: {snap.commit.message.strip()}")
    return "\n".join(lines)


def _error_text(exc: BaseException) -> str:
    """A user-facing line for any failure (CoralErrors keep their hint), secrets redacted."""
    if isinstance(exc, CoralError):
        return redact_text(str(exc))
    if isinstance(exc, ImportError):
        return f"{exc}: install the missing package (pip install 'coral-vcs[registry]' / '[torch]')"
    return redact_text(f"{type(exc).__name__}: {exc}")
