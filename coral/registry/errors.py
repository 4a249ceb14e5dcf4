"""Errors of publishing (all `CoralError`s with a hint). `ModelPublisher` never raises them to
its caller: they become the `error` of a failed `PublishResult`."""

from __future__ import annotations

from coral.errors import CoralError


class PublishError(CoralError):
    """A publish could not be done."""


class ExportFormatError(PublishError):
    default_hint = "choose one of: safetensors, pt, npz"


class ExportTargetError(PublishError):
    default_hint = "export into a new or empty folder, or one holding only an earlier export"


class HubPublishError(PublishError):
    """The Hugging Face Hub refused or could not be reached."""

    default_hint = "check HF_ENDPOINT (default https://huggingface.co), HF_TOKEN and the repo id"


class HubTokenError(HubPublishError):
    default_hint = "pass token=..., set HF_TOKEN, or run `hf auth login`"


class MlflowPublishError(PublishError):
    """MLflow refused or could not be reached; `run_id` is set once a run was created."""

    default_hint = "check the tracking URI (--tracking-uri / MLFLOW_TRACKING_URI) and the server"

    def __init__(self, message: str, run_id: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.run_id = run_id
