"""A real Azurite blob server (npm `azurite` 3.35, installed by `make test` into .cache/node/)
on 127.0.0.1 for tests, with the well-known development account `devstoreaccount1`."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers.process import ManagedProcess, free_port, port_open, unavailable

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / ".cache" / "node"  # `make test`: npm install --prefix .cache/node azurite@3.35
ACCOUNT = "devstoreaccount1"
# The published development-storage key (not a secret: every Azurite install has it).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass
class Azurite:
    endpoint: str  # http://127.0.0.1:PORT/devstoreaccount1
    account: str = ACCOUNT
    account_key: str = ACCOUNT_KEY

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.account_key};BlobEndpoint={self.endpoint};"
        )

    def create_container(self, name: str | None = None) -> str:
        from azure.storage.blob import BlobServiceClient

        name = name or f"coral-{uuid.uuid4().hex[:12]}"
        with BlobServiceClient.from_connection_string(self.connection_string) as client:
            client.create_container(name)
        return name


def azurite_command() -> list[str]:
    """`node …/azurite-blob`, else a skip that says what is missing."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed: Azurite (the Azure Blob tests' server) needs node 20")
    script = NODE_DIR / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
    if not script.is_file():
        unavailable(f"Azurite is not installed in {NODE_DIR}: `make test` installs it with npm")
    return [node, str(script)]


def _answers(port: int) -> bool:
    import urllib.error
    import urllib.request

    if not port_open(port):
        return False
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/{ACCOUNT}?comp=list", timeout=1)
    except urllib.error.HTTPError:
        return True  # 403 without a signature: it is up
    except OSError:
        return False
    return True


@contextmanager
def azurite_server(workdir: Path | None = None) -> Iterator[Azurite]:
    """Start azurite-blob on a free loopback port; yields the blob endpoint and account."""
    command = azurite_command()
    with tempfile.TemporaryDirectory(prefix="coral-azurite-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        (base / "data").mkdir(parents=True, exist_ok=True)
        port = free_port()
        args = [
            *command, "--blobHost", "127.0.0.1", "--blobPort", str(port),
            "--location", str(base / "data"), "--skipApiVersionCheck", "--loose",
            "--disableTelemetry",
        ]
        server = Azurite(endpoint=f"http://127.0.0.1:{port}/{ACCOUNT}")
        proc = ManagedProcess(args, log_path=base / "azurite.log", cwd=base)
        try:
            proc.wait_until(lambda: _answers(port), timeout=60, what="azurite-blob")
            yield server
        finally:
            proc.stop()
