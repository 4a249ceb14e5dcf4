"""`coral serve --remote --tls-cert --tls-key` serves https; clients trust a self-signed
server through `--ca-file` (kept per remote) or CORAL_REMOTE_CA, and an untrusted certificate
is one error with a hint, not a retry loop. The certificate is made here with openssl."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workflows.http_remote.conftest import (
    Server,
    assert_cli_error,
    build_repository,
    coral,
    make_acl,
    refs_of,
    start_server,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM), valid for a day."""
    cert, key = folder / "server.pem", folder / "server.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    cert, key = self_signed(tmp_path)
    path = build_repository(tmp_path / "served")
    acl = tmp_path / "acl.toml"
    running = start_server(path, acl, make_acl(acl), tls=(cert, key))
    try:
        yield running, cert
    finally:
        running.stop()


def test_clone_over_https_with_the_servers_certificate(
    tls_server: tuple[Server, Path], tmp_path: Path
) -> None:
    server, cert = tls_server
    assert server.url.startswith("https://127.0.0.1:")
    clone = tmp_path / "clone"
    token = server.tokens["reader"]
    done = coral("clone", server.url, str(clone), "--ca-file", str(cert), token=token)
    assert done.returncode == 0, done.stderr
    assert refs_of(clone)["heads/main"] == refs_of(server.path)["heads/main"]
    assert coral("-C", str(clone), "fsck").returncode == 0
    assert str(cert) in (clone / ".coral" / "remotes.json").read_text()
    fetched = coral("-C", str(clone), "fetch", token=token)  # the CA file is kept per remote
    assert fetched.returncode == 0, fetched.stderr
    assert f"HTTP remote: {server.url}" in server.output()  # the banner names the https URL


def test_an_untrusted_certificate_is_one_error(
    tls_server: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = tls_server
    refused = coral("clone", server.url, str(tmp_path / "c"), token=server.tokens["reader"])
    assert_cli_error(refused, "TLS certificate is not trusted", "--ca-file")
    assert not (tmp_path / "c").exists()


def test_https_needs_both_files(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    path = build_repository(tmp_path / "served")
    result = coral("-C", str(path), "serve", "--remote", "--tls-cert", str(cert))
    assert_cli_error(result, "needs both --tls-cert and --tls-key")
