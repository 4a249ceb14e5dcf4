"""Secrets in URLs: a password or token inside a URL (user info, `?token=`, `sig=`) is never
printed (errors, progress, results) nor stored (publish history in coral.db, remotes.json).
Run against the real MLflow server, the fake Hub on loopback and real remotes; every captured
output and every byte of the repository's `.coral` folder is searched for the secret."""

from __future__ import annotations

import base64
import json
import random
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.core.redact import redact_text, redact_url
from coral.registry import ModelPublisher
from coral.registry.mlflow_registry import check_reachable
from coral.version_control.repository import Repository
from tests.faults.scale import trials
from tests.registry.conftest import HUB_ORG, HUB_TOKEN, HUB_USER
from tests.servers.hub_server import running_hub
from tests.servers.mlflow_server import mlflow_server
from tests.servers.process import free_port

SECRET = "pW-s3cr3t-91c4"


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repository]:
    r = Repository.init(tmp_path / "repo")
    r.add_all_weights({"w": np.arange(8, dtype=np.float32), "b": np.zeros(2, np.float16)})
    r.commit("one")
    yield r
    r.close()


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-secrets")) as uri:
        yield uri


def assert_nowhere(repo: Repository, *texts: str) -> None:
    """The secret is in no text given and in no byte of .coral (database, WAL, config)."""
    for text in texts:
        assert SECRET not in text, text
    for path in repo.coral_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def cli(repo: Repository, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["-C", str(repo.path), *args])
    return result.exit_code, result.output


def with_userinfo(uri: str, user: str = "alice") -> str:
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{user}:{SECRET}@{rest}"


# -- the redactor ----------------------------------------------------------------------------------
URLS = [
    "http://alice:{s}@127.0.0.1:5000/api",
    "https://{s}@hub.example/org/model",
    "https://bob:p%40{s}@host/x?y=1",
    "http://u:a@b@{s}@host:1/",  # an unescaped @ in the password
    "https://store.example/obj?X-Amz-Signature={s}&X-Amz-Date=20260101",
    "az://container/prefix?sv=2024-01-01&sig={s}",
    "https://host/cb#access_token={s}&state=1",
    "minio://AKIA:{s}@localhost:9000/bucket/prefix",
    "http://h/p?token={s}",
    "http://h/p?api_key={s}&page=2",
]


@pytest.mark.parametrize("template", URLS)
def test_redact_url_removes_the_secret_and_keeps_the_address(template: str) -> None:
    url = template.format(s=SECRET)
    out = redact_url(url)
    assert SECRET not in out and "***" in out
    assert out.split("://")[0] == url.split("://")[0]
    inside = f"API request to {url} failed (while calling '{url}')"
    assert SECRET not in redact_text(inside)


def test_random_urls_in_text_never_keep_the_secret() -> None:
    rng = random.Random(2814)
    for _ in range(trials(200)):
        template = rng.choice(URLS)
        url = template.format(s=SECRET)
        text = rng.choice(["{u}", "error: {u}: refused", "'{u}'", "<{u}>", "x={u} y", "({u})"])
        assert SECRET not in redact_text(text.format(u=url)), url


# -- MLflow ----------------------------------------------------------------------------------------
def test_mlflow_publish_with_credentials_in_the_tracking_uri(
    repo: Repository, mlflow_uri: str, capfd: pytest.CaptureFixture[str]
) -> None:
    uri = with_userinfo(mlflow_uri)
    result = ModelPublisher(repo).publish_mlflow("secret-model", tracking_uri=uri)
    assert result.success, result.error  # the reachability check passes with user info
    assert result.url and result.url.startswith(mlflow_uri)
    code, printed = cli(repo, "publish", "mlflow", "secret-model", "--tracking-uri", uri)
    assert code == 0, printed
    _, history = cli(repo, "publish", "history")
    _, history_json = cli(repo, "publish", "history", "--json")
    assert "secret-model" in history
    captured = capfd.readouterr()
    assert_nowhere(
        repo,
        json.dumps(result.to_dict()),
        printed,
        history,
        history_json,
        captured.out,
        captured.err,
    )


def test_mlflow_unreachable_with_credentials(
    repo: Repository, capfd: pytest.CaptureFixture[str]
) -> None:
    dead = with_userinfo(f"http://127.0.0.1:{free_port()}")
    result = ModelPublisher(repo).publish_mlflow("m", tracking_uri=dead)
    assert not result.success and result.error and "cannot reach" in result.error
    code, printed = cli(repo, "publish", "mlflow", "m", "--tracking-uri", dead)
    assert code == 1 and "cannot reach" in printed
    captured = capfd.readouterr()
    assert_nowhere(repo, str(result.error), printed, captured.out, captured.err)


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        """Quiet: requests are read from `seen`, not from stderr."""


def test_reachability_check_sends_the_credentials_as_basic_auth() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _Recorder.seen.clear()
        check_reachable(with_userinfo(f"http://127.0.0.1:{server.server_address[1]}", "bob"))
    finally:
        server.shutdown()
        server.server_close()
    [(path, auth)] = _Recorder.seen
    assert path == "/health"
    assert auth is not None and base64.b64decode(auth.split()[1]).decode() == f"bob:{SECRET}"


# -- Hugging Face Hub ------------------------------------------------------------------------------
@pytest.fixture
def hub_with_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The fake Hub; HF_ENDPOINT names it with a user and password."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with running_hub({HUB_TOKEN: HUB_USER}, orgs={HUB_ORG: {HUB_USER}}) as server:
        monkeypatch.setenv("HF_ENDPOINT", with_userinfo(server.url))
        monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
        yield server.url


def test_hub_endpoint_with_credentials(
    repo: Repository, hub_with_credentials: str, capfd: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    result = ModelPublisher(repo, on_progress=lines.append).publish_huggingface(
        f"{HUB_USER}/secret-model"
    )
    assert lines  # progress went out (through the redactor)
    code, printed = cli(repo, "publish", "huggingface", f"{HUB_USER}/secret-model")
    _, history = cli(repo, "publish", "history")
    _, history_json = cli(repo, "publish", "history", "--json")
    assert "secret-model" in history
    assert code == (0 if result.success else 1), printed
    if not result.success:  # the user info replaced the token: the message names the endpoint
        assert result.error and "***@" in result.error
    captured = capfd.readouterr()
    assert_nowhere(
        repo,
        json.dumps(result.to_dict()),
        *lines,
        printed,
        history,
        history_json,
        captured.out,
        captured.err,
    )


def test_hub_unreachable_with_credentials(
    repo: Repository, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", with_userinfo(f"http://127.0.0.1:{free_port()}"))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    result = ModelPublisher(repo).publish_huggingface("someone/model")
    assert not result.success
    code, printed = cli(repo, "publish", "huggingface", "someone/model")
    assert code == 1
    captured = capfd.readouterr()
    assert_nowhere(repo, str(result.error), printed, captured.out, captured.err)


def test_history_rows_written_before_redaction_are_shown_redacted(repo: Repository) -> None:
    ModelPublisher(repo).get_history()  # creates the table
    with sqlite3.connect(repo.coral_dir / "coral.db") as db:
        db.execute(
            "INSERT INTO publish_history (registry, model_name, version, url, success, error,"
            " commit_hash, metadata, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "mlflow",
                "old",
                "1",
                f"http://a:{SECRET}@h/#/models/old/versions/1",
                0,
                f"cannot reach http://a:{SECRET}@h",
                None,
                json.dumps({"tracking_uri": f"http://a:{SECRET}@h"}),
                0.0,
            ),
        )
    _, table = cli(repo, "publish", "history")
    _, as_json = cli(repo, "publish", "history", "--json")
    assert "old" in table and SECRET not in table and SECRET not in as_json


# -- remotes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        f"minio://AKIA:{SECRET}@127.0.0.1:{{port}}/bucket",
        f"az://container/prefix?sv=2024&sig={SECRET}",
        f"s3://bucket/p?X-Amz-Signature={SECRET}",
    ],
)
def test_remote_urls_with_secrets(repo: Repository, url: str) -> None:
    url = url.format(port=free_port())
    outputs = [cli(repo, "remote", "add", "r", url)[1]]
    outputs += [cli(repo, "remote", "list")[1], cli(repo, "remote", "list", "--json")[1]]
    if url.startswith("minio"):  # nothing listens: the error names the remote, not the secret
        code, printed = cli(repo, "push", "r")
        assert code == 1
        outputs.append(printed)
        outputs.append(cli(repo, "clone", url, str(repo.path.parent / "clone"))[1])
    assert_nowhere(repo, *outputs)
