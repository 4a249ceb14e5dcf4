"""Logging an exported folder as an MLflow run and registering it as a model version.

Uses the MLflow client only (no pyfunc flavor): a run with params, metrics and tags, the folder
as the run's `model/` artifacts, then a registered model (created on first use) and a new
version whose source is those artifacts.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from coral.core.redact import redact_text, redact_url, split_credentials
from coral.registry.errors import MlflowPublishError

ARTIFACT_PATH = "model"
PREFLIGHT_TIMEOUT_S = 10.0
_MAX_PARAM_CHARS = 6000


@dataclass
class MlflowVersion:
    version: str
    run_id: str
    experiment_id: str
    source: str
    url: str | None
    tracking_uri: str


def check_reachable(tracking_uri: str) -> None:
    """Fail fast (instead of MLflow's minutes of retries) when an HTTP tracking server does not
    answer at all. Any HTTP status counts as reachable. A `user:password@` in the URI is sent
    as HTTP basic auth, as MLflow sends MLFLOW_TRACKING_USERNAME / _PASSWORD."""
    if urlsplit(tracking_uri).scheme not in ("http", "https"):
        return
    uri, user, password = split_credentials(tracking_uri)
    request = urllib.request.Request(f"{uri.rstrip('/')}/health")
    if user is not None or password is not None:
        token = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=PREFLIGHT_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered; the API calls will say more
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MlflowPublishError(
            redact_text(f"cannot reach the MLflow tracking server at {uri}: {reason}")
        ) from exc


@contextlib.contextmanager
def _credentials(user: str | None, password: str | None) -> Iterator[None]:
    """MLflow's own credential variables set to the URI's user info for the duration (MLflow
    reads them at every request); the URI itself then carries no secret into any message."""
    if user is None and password is None:
        yield
        return
    names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {n: os.environ.get(n) for n in names}
    os.environ[names[0]] = user or ""
    os.environ[names[1]] = password or ""
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        str(k): float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }


def _param_value(value: Any) -> str:
    text = (
        value
        if isinstance(value, str)
        else repr(value)
        if not isinstance(value, (int, float))
        else str(value)
    )
    return text[:_MAX_PARAM_CHARS]


def model_version_url(tracking_uri: str, model_name: str, version: str) -> str | None:
    """The MLflow UI page of a model version (only for HTTP tracking servers)."""
    if urlsplit(tracking_uri).scheme not in ("http", "https"):
        return None
    return f"{tracking_uri.rstrip('/')}/#/models/{quote(model_name, safe='')}/versions/{version}"


def publish_folder(
    folder: Path,
    model_name: str,
    *,
    tracking_uri: str | None,
    experiment_name: str | None,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    run_tags: Mapping[str, str],
    version_tags: Mapping[str, str],
    description: str | None,
) -> MlflowVersion:
    """Log `folder` in a new run of `experiment_name` and register it as a version of
    `model_name`; returns the version, run id and UI URL."""
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError as exc:
        raise MlflowPublishError(
            "mlflow is not installed: pip install 'coral-vcs[registry]'"
        ) from exc

    given = tracking_uri or mlflow.get_tracking_uri()
    check_reachable(given)
    address, user, password = split_credentials(given)
    with _credentials(user, password):
        return _publish(
            lambda: MlflowClient(tracking_uri=address),
            redact_url(address),  # a token in a query string stays out of messages too
            folder,
            model_name,
            experiment_name=experiment_name,
            run_name=run_name,
            params=params,
            metrics=metrics,
            run_tags=run_tags,
            version_tags=version_tags,
            description=description,
        )


def _publish(
    make_client: Callable[[], Any],
    uri: str,
    folder: Path,
    model_name: str,
    *,
    experiment_name: str | None,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    run_tags: Mapping[str, str],
    version_tags: Mapping[str, str],
    description: str | None,
) -> MlflowVersion:
    """The publish itself, with `uri` (redacted) in every message and result."""
    from mlflow.entities import Metric, Param
    from mlflow.exceptions import MlflowException

    run_id: str | None = None
    client: Any = None
    try:
        client = make_client()
        name = experiment_name or "Default"
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        run = client.create_run(experiment_id, run_name=run_name, tags=dict(run_tags))
        run_id = run.info.run_id
        now_ms = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now_ms, 0) for k, v in _numeric(metrics).items()],
            params=[Param(str(k), _param_value(v)) for k, v in params.items()],
        )
        client.log_artifacts(run_id, str(folder), artifact_path=ARTIFACT_PATH)
        source = f"{run.info.artifact_uri.rstrip('/')}/{ARTIFACT_PATH}"
        try:
            client.create_registered_model(model_name, description=description)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            model_name,
            source=source,
            run_id=run_id,
            tags=dict(version_tags),
            description=description,
        )
        _terminate(client, run_id, "FINISHED")
    except MlflowPublishError:
        raise
    except Exception as exc:
        if run_id is not None:
            with contextlib.suppress(Exception):  # the original error is the one to report
                _terminate(client, run_id, "FAILED")
        raise MlflowPublishError(redact_text(_describe(exc, uri)), run_id) from exc
    return MlflowVersion(
        version=str(version.version),
        run_id=run_id,
        experiment_id=str(experiment_id),
        source=source,
        url=model_version_url(uri, model_name, str(version.version)),
        tracking_uri=uri,
    )


def _terminate(client: Any, run_id: str, status: str) -> None:
    """End the run without MLflow's "View run at" lines on stdout (our result carries the URL)."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status)


def _describe(exc: BaseException, uri: str) -> str:
    code = getattr(exc, "error_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return f"the MLflow server at {uri} refused access ({code}): {text}"
    if code:
        return f"MLflow at {uri} failed ({code}): {text}"
    if isinstance(exc, (ConnectionError, OSError)) or "Connection" in type(exc).__name__:
        return f"cannot reach the MLflow tracking server at {uri}: {text}"
    return f"MLflow at {uri} failed: {type(exc).__name__}: {text}"
