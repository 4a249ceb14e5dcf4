"""A real `redis-server` on 127.0.0.1 for tests (no persistence), as a context manager."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.process import ManagedProcess, free_port, require_binary


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path | None = None) -> Iterator[str]:
    """Start `redis-server` on a free loopback port; yields its URL (`redis://127.0.0.1:P/0`)."""
    binary = require_binary("redis-server")
    with tempfile.TemporaryDirectory(prefix="coral-redis-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        port = free_port()
        proc = ManagedProcess(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(base),
                "--protected-mode",
                "yes",
            ],
            log_path=base / "redis.log",
        )
        try:
            proc.wait_until(lambda: _pings(port), timeout=20, what="redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.stop()
