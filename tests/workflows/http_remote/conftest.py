"""A served repository and a real `coral serve --remote --acl` process on a loopback port.

The ACL file holds three tokens made with `coral serve token create`: `reader` (read only),
`writer` (writes every branch) and `bot` (writes `feature/*` only). `coral` runs as a
subprocess with `CORAL_REMOTE_TOKEN` set, as a user runs it.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="coral serve needs the `web` extra")
pytest.importorskip("httpx", reason="HTTP remotes need httpx")

from coral.version_control.repository import Repository
from coral.web.server import free_port
from tests.workflows.readme_model import readme_model as model

SERVE = [sys.executable, "-m", "coral.cli.main"]
TOKENS = {"reader": {}, "writer": {"write": ["*"]}, "bot": {"write": ["feature/*"]}}


def build_repository(path: Path) -> Path:
    """`main` with two commits and a tag `v1`, and a branch `feature` at the first."""
    with Repository.init(path) as repo:
        repo.add_all_weights(model(0))
        repo.commit("base", metadata={"metrics": {"loss": 1.0}})
        repo.create_branch("feature")
        repo.add_all_weights(model(1))
        repo.commit("tuned head", metadata={"metrics": {"loss": 0.5}})
        repo.tag_version("v1", description="first release", metrics={"accuracy": 0.9})
    return path


def coral(
    *args: str, token: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`coral ARGS...` as a subprocess (with CORAL_REMOTE_TOKEN when `token` is given)."""
    env = {k: v for k, v in os.environ.items() if k != "CORAL_REMOTE_TOKEN"}
    env["COLUMNS"] = "80"
    if token is not None:
        env["CORAL_REMOTE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "coral.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=cwd,
    )


def assert_cli_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 1 with one `error:` line and a `hint:` line, no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert any(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


@dataclass
class Server:
    """A running `coral serve --remote --acl` of `path`."""

    path: Path
    acl: Path
    url: str  # http://127.0.0.1:PORT/remote/
    tokens: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.output()


def start_server(
    path: Path, acl: Path, tokens: dict[str, str], *extra: str, tls: tuple[Path, Path] | None = None
) -> Server:
    """`coral serve --remote --acl` of `path`; with `tls` (certificate, key) over https."""
    port = free_port()
    log = path.parent / f"serve-{port}.log"
    handle = open(log, "wb")  # noqa: SIM115 - the process writes it until stopped
    args = ["-C", str(path), "serve", "--port", str(port), "--remote", "--acl", str(acl)]
    if tls is not None:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    scheme = "https" if tls is not None else "http"
    context = ssl.create_default_context(cafile=str(tls[0])) if tls is not None else None
    proc = subprocess.Popen(
        [*SERVE, *args, *extra],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "CORAL_REMOTE_TOKEN"},
    )
    handle.close()
    server = Server(path, acl, f"{scheme}://127.0.0.1:{port}/remote/", tokens, proc, log)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"coral serve exited: {server.output()}")
        probe = urllib.request.Request(
            server.url + "coral-remote.json",
            method="HEAD",
            headers={"Authorization": f"Bearer {tokens['reader']}"},
        )
        try:
            urllib.request.urlopen(probe, timeout=5, context=context)
            return server
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"coral serve answered {exc.code}: {server.output()}") from None
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"coral serve never answered: {server.output()}") from None
            time.sleep(0.1)


def make_acl(acl: Path) -> dict[str, str]:
    tokens = {}
    for name, grant in TOKENS.items():
        result = coral(
            "serve",
            "token",
            "create",
            name,
            "--acl",
            str(acl),
            *[arg for pattern in grant.get("write", []) for arg in ("--write", pattern)],
        )
        assert result.returncode == 0, result.stderr
        tokens[name] = result.stdout.strip()
    return tokens


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    path = build_repository(tmp_path / "served")
    acl = tmp_path / "acl.toml"
    tokens = make_acl(acl)
    running = start_server(path, acl, tokens)
    try:
        yield running
    finally:
        running.stop()


def refs_of(path: Path) -> dict[str, str]:
    """Every branch and tag of a repository: name -> commit."""
    with Repository(path) as repo:
        refs = {f"heads/{b.name}": b.commit for b in repo.list_branches()}
        refs.update({f"tags/{t.name}": t.commit_hash for t in repo.list_tags()})
    return refs


def packs_of(path: Path) -> set[str]:
    return {p.name for p in (path / ".coral" / "objects" / "packs").glob("*.pack")}
