"""Start a real `mlflow server` on 127.0.0.1 for tests.

    with mlflow_server(tmp_dir) as uri:      # "http://127.0.0.1:PORT"
        MlflowClient(tracking_uri=uri) ...

The server keeps its runs and registered models in `tmp_dir/mlflow.db` (SQLite) and proxies
artifacts into `tmp_dir/artifacts`. Starting takes 10-15 s, so share one server per test session:

    @pytest.fixture(scope="session")
    def mlflow_uri(tmp_path_factory):
        with mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
            yield uri
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.process import ManagedProcess, free_port, http_ok

STARTUP_TIMEOUT_S = 120.0


def mlflow_command() -> list[str]:
    """How to run the `mlflow` CLI: the script beside this interpreter (the venv's), else PATH."""
    beside = Path(sys.executable).parent / "mlflow"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("mlflow")
    if found:
        return [found]
    try:
        import mlflow  # noqa: F401
    except ImportError:
        msg = "mlflow is not installed; `make test` installs it (extra: registry)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return [sys.executable, "-m", "mlflow"]


@contextlib.contextmanager
def mlflow_server(workdir: Path) -> Iterator[str]:
    """Run `mlflow server` on a free loopback port; yields its tracking URI, stops it on exit."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    artifacts = workdir / "artifacts"
    artifacts.mkdir(exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    # Without this the server starts a job runner that needs ~2.3 GB of RAM.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [
        *mlflow_command(),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        "1",
    ]
    proc = ManagedProcess(args, workdir / "mlflow-server.log", env=env, cwd=workdir)
    uri = f"http://127.0.0.1:{port}"
    try:
        proc.wait_until(lambda: http_ok(f"{uri}/health"), STARTUP_TIMEOUT_S, "mlflow server")
        yield uri
    finally:
        proc.stop()
