"""`coral serve` and `coral share` as a user runs them: a real `coral serve` process on a free
loopback port, the link `coral share` prints for it, the refusal to serve beyond loopback
without a token, and the bind rules themselves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.errors import CoralError
from coral.web import access, links
from coral.web.server import free_port
from tests.web.conftest import Built, http_get


def coral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coral.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            http_get(url)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_serve_then_share(built: Built) -> None:
    port = free_port()
    token_file = built.path.parent / "token.txt"
    token_file.write_text("file-token-1234\n", encoding="utf-8")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coral.cli.main",
            "-C",
            str(built.path),
            "serve",
            "--port",
            str(port),
            "--token-file",
            str(token_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    record = built.path / ".coral" / links.RECORD_FILE
    try:
        _wait_for(base + "/", proc)
        assert http_get(base + "/")[0] == 401  # the token file's token is required
        assert (record.stat().st_mode & 0o777) == 0o600  # it holds the token
        shared = coral("-C", str(built.path), "share", "HEAD~1..HEAD", "--link")
        assert shared.returncode == 0, shared.stderr
        url = shared.stdout.strip()
        assert url.startswith(base + "/diff?from=") and url.endswith("&token=file-token-1234")
        status, _, body = http_get(url)
        assert status == 200 and built.merge[:10].encode() in body
        as_json = json.loads(coral("-C", str(built.path), "share", "v1", "--json").stdout)
        assert as_json["commit"] == built.merge and as_json["server_running"] is True
        assert http_get(as_json["url"])[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "Coral dashboard of" in err and base in err
    assert "GET /diff?from=" in err and "token=***" in err  # the request log masks the token
    assert err.count("file-token-1234") == 1  # printed once, in the link at start-up
    assert not record.exists()  # the record goes with the server


def test_share_without_a_server(built: Built) -> None:
    result = CliRunner().invoke(
        app, ["-C", str(built.path), "share", f"{built.merge}:embed.weight"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"http://127.0.0.1:8080/tensor?ref={built.merge}&name=embed.weight"
    )
    assert "no `coral serve` runs" in result.stderr
    bad = CliRunner().invoke(app, ["-C", str(built.path), "share", "HEAD:no.such.tensor"])
    assert bad.exit_code == 1 and "no tensor named" in bad.stderr
    unknown = CliRunner().invoke(app, ["-C", str(built.path), "share", "no-such-ref"])
    assert unknown.exit_code == 1 and "unknown ref" in unknown.stderr


def _address() -> str | None:
    """This machine's non-loopback IPv4 address (the one a default route leaves from; a UDP
    "connect" sends nothing), if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            address = str(s.getsockname()[0])
    except OSError:
        return None
    return None if access.is_loopback(address) or address == "0.0.0.0" else address


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "non-loopback"])
def test_serve_refuses_other_addresses_without_a_token(built: Built, host: str) -> None:
    if host == "non-loopback":
        host = _address() or pytest.skip("this machine has no non-loopback address")
    port = free_port()
    result = coral("-C", str(built.path), "serve", "--host", host, "--port", str(port))
    assert result.returncode == 1
    assert "refusing to serve" in result.stderr and "--token" in result.stderr
    assert "Traceback" not in result.stderr
    with socket.socket() as s:  # nothing listens: the refusal came before any bind
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert not (built.path / ".coral" / links.RECORD_FILE).exists()


def test_bind_rules() -> None:
    for host in ("127.0.0.1", "127.3.4.5", "localhost", "::1", "[::1]", "app.localhost"):
        assert access.is_loopback(host), host
        access.check_bind(host, None)
    for host in ("0.0.0.0", "::", "10.1.2.3", "example.com", ""):
        assert not access.is_loopback(host), host
        with pytest.raises(CoralError, match="without a token"):
            access.check_bind(host, None)
        access.check_bind(host, "long-enough-token")
    with pytest.raises(CoralError, match="too short"):
        access.check_bind("0.0.0.0", "short")
    assert access.token_matches("abc", "abc") and not access.token_matches("abd", "abc")
    assert not access.token_matches(None, "abc")
    assert len(access.new_token()) >= 40


def test_token_file_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(CoralError, match="empty"):
        access.read_token_file(empty)
    with pytest.raises(CoralError, match="cannot read"):
        access.read_token_file(tmp_path / "missing")
    both = coral("serve", "--token", "x" * 10, "--token-file", str(empty))
    assert both.returncode == 1 and "not both" in both.stderr


def test_share_urls() -> None:
    assert links.share_url("http://h:1/", "/commit/abc", None) == "http://h:1/commit/abc"
    assert links.share_url("http://h:1", "/diff?from=a&to=b", "t k") == (
        "http://h:1/diff?from=a&to=b&token=t+k"
    )
    assert links.tensor_path("abc", "a/b c") == "/tensor?ref=abc&name=a%2Fb+c"
    assert links.base_url("::1", 80) == "http://[::1]:80"
    assert links.base_url("0.0.0.0", 80) == f"http://{socket.gethostname()}:80"


def test_stale_record_is_not_trusted(tmp_path: Path) -> None:
    links.write_record(tmp_path, links.ServerRecord("http://x:1", "tok", pid=2**22 + 12345))
    record = links.read_record(tmp_path)
    assert record is not None and record.token == "tok" and not record.running
    links.remove_record(tmp_path, os.getpid())  # not ours: kept
    assert links.read_record(tmp_path) is not None
    links.remove_record(tmp_path, 2**22 + 12345)
    assert links.read_record(tmp_path) is None
