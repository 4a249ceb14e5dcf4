"""Running the dashboard: in the foreground (`coral serve`) or in a background thread (tests,
benchmarks), always with uvicorn on the address given (loopback by default)."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from coral.errors import CoralError


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Tls:
    """The certificate (PEM, with its chain) and private key `coral serve` answers https with."""

    cert: Path
    key: Path


def _config(app: Any, host: str, port: int, quiet: bool, tls: Tls | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls.cert) if tls else None,
        ssl_keyfile=str(tls.key) if tls else None,
        log_level="warning" if quiet else "info",
        access_log=False,  # uvicorn's would print ?token=...: the app logs requests itself
        server_header=False,
        proxy_headers=False,
        lifespan="off",
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve_forever(
    app: Any, host: str, port: int, *, quiet: bool = False, tls: Tls | None = None
) -> None:
    """Serve until interrupted (Ctrl-C, or SIGTERM: uvicorn stops, then re-raises the signal,
    which ends up here as KeyboardInterrupt so that the caller's cleanup runs)."""
    app.state.log_requests = not quiet
    if not quiet:
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        access = logging.getLogger("coral.web.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
    server = uvicorn.Server(_config(app, host, port, quiet, tls))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    server.run()
    if not server.started:
        raise CoralError(
            f"could not listen on {host}:{port}", hint="is another server using that port?"
        )


@contextmanager
def background_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a thread; yields the base URL; stops the server on exit."""
    port = port or free_port(host)
    server = uvicorn.Server(_config(app, host, port, quiet=True))
    thread = threading.Thread(target=server.run, name="coral-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise CoralError(f"the dashboard did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
