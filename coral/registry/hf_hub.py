"""Uploading an exported folder to the Hugging Face Hub, and saying clearly why it failed.

The endpoint is read from `HF_ENDPOINT` at call time (huggingface_hub reads it only at import),
so a Hub-compatible server chosen after import is honoured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral.core.redact import redact_text, redact_url
from coral.registry.errors import HubPublishError, HubTokenError

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass
class HubUpload:
    url: str  # the repository page
    commit_oid: str
    commit_url: str
    endpoint: str


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def resolve_token(token: str | None) -> str:
    """The token to use: the argument, else `HF_TOKEN`, else a saved `hf auth login` token."""
    if token:
        return token
    env = os.environ.get("HF_TOKEN")
    if env:
        return env
    from huggingface_hub import get_token

    saved = get_token()
    if saved:
        return saved
    raise HubTokenError("no Hugging Face token")


def upload_folder(
    folder: Path,
    repo_id: str,
    *,
    token: str,
    private: bool,
    commit_message: str,
    commit_description: str,
) -> HubUpload:
    """Create `repo_id` (kept if it exists) and commit every file of `folder` to its main branch."""
    from huggingface_hub import HfApi

    endpoint = hub_endpoint()
    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            commit_message=commit_message,
            commit_description=commit_description,
        )
    except Exception as exc:
        raise hub_error(exc, endpoint, repo_id) from exc
    return HubUpload(  # the client builds these from the endpoint: no user info in them
        url=redact_url(str(repo_url)),
        commit_oid=str(info.oid),
        commit_url=redact_url(str(info.commit_url)),
        endpoint=redact_url(endpoint),
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _is_network_error(exc: BaseException) -> bool:
    for e in _chain(exc):
        module = type(e).__module__
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        if module.startswith(("httpx", "httpcore")) and "Status" not in type(e).__name__:
            return True
    return False


def hub_error(exc: BaseException, endpoint: str, repo_id: str) -> HubPublishError:
    """A HubPublishError saying in one sentence (plus the Hub's own message) why a call failed;
    secrets in the endpoint (or in any URL the client quotes) are redacted."""
    error = _hub_error(exc, redact_url(endpoint), repo_id)
    return type(error)(redact_text(error.message), error.hint)


def _hub_error(exc: BaseException, endpoint: str, repo_id: str) -> HubPublishError:
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return HubPublishError(
            "huggingface_hub is in offline mode (HF_HUB_OFFLINE is set)",
            hint="unset HF_HUB_OFFLINE",
        )
    if isinstance(exc, HFValidationError):
        return HubPublishError(
            f"invalid repository id {repo_id!r}: {exc}", hint="write it as NAMESPACE/NAME"
        )
    if isinstance(exc, HfHubHTTPError):
        response: Any = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        server_message = (getattr(exc, "server_message", None) or "").strip()
        detail = f" ({server_message})" if server_message else ""
        if status == 401 and "Invalid credentials" in server_message:
            return HubTokenError(f"the Hub at {endpoint} rejected the token (401 Unauthorized)")
        if isinstance(exc, RepositoryNotFoundError):
            return HubPublishError(
                f"repository {repo_id} not found on {endpoint} or not accessible with this token"
                f" ({status}){detail}"
            )
        if status in (401, 403):
            return HubTokenError(
                f"permission denied on {endpoint} for {repo_id} ({status}){detail}",
                hint="use a token with write access to that namespace, or publish to your own",
            )
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return HubPublishError(f"the Hub at {endpoint} answered {status}: {first_line}{detail}")
    if _is_network_error(exc):
        return HubPublishError(
            f"cannot reach the Hugging Face Hub at {endpoint}: {exc or type(exc).__name__}",
            hint="check the network, or HF_ENDPOINT if you use a mirror",
        )
    if isinstance(exc, ValueError) and "metadata" in str(exc).lower():
        return HubPublishError(f"the Hub rejected the model card metadata: {exc}")
    return HubPublishError(f"{type(exc).__name__}: {exc}")
