"""Dashboard URLs that `coral share REF --link` prints, and the record a running `coral serve`
leaves in the repository (`.coral/serve.json`: where it listens, its token, its pid) so that a
share link names the right address. No FastAPI here."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

RECORD_FILE = "serve.json"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class ServerRecord:
    """Where a dashboard serves one repository."""

    url: str  # base URL, no trailing slash: http://127.0.0.1:8080
    token: str | None = None
    pid: int | None = None

    @property
    def running(self) -> bool:
        """Whether the process that wrote the record is still alive (this machine only)."""
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, someone else's
            return True
        return True


def advertised_host(host: str) -> str:
    """The host name a link should use for a server bound to `host` (a wildcard address
    is reachable under this machine's name)."""
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def base_url(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://{advertised_host(host)}:{port}"


def write_record(coral_dir: Path, record: ServerRecord) -> Path | None:
    """Leave the record for `coral share` (owner-only: it may hold the token); None when the
    repository is read-only (share then needs --url)."""
    path = Path(coral_dir) / RECORD_FILE
    data = json.dumps({"url": record.url, "token": record.token, "pid": record.pid})
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
    except OSError:
        return None
    return path


def read_record(coral_dir: Path) -> ServerRecord | None:
    try:
        data = json.loads((Path(coral_dir) / RECORD_FILE).read_text(encoding="utf-8"))
        return ServerRecord(str(data["url"]).rstrip("/"), data.get("token"), data.get("pid"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_record(coral_dir: Path, pid: int) -> None:
    """Remove the record if this process (`pid`) wrote it."""
    record = read_record(coral_dir)
    if record is not None and record.pid == pid:
        with contextlib.suppress(OSError):
            (Path(coral_dir) / RECORD_FILE).unlink()


def with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    return url + ("&" if "?" in url else "?") + urlencode({"token": token})


def commit_path(commit_hash: str) -> str:
    return f"/commit/{quote(commit_hash, safe='')}"


def diff_path(from_hash: str, to_hash: str) -> str:
    return "/diff?" + urlencode({"from": from_hash, "to": to_hash})


def tensor_path(commit_hash: str, name: str) -> str:
    return "/tensor?" + urlencode({"ref": commit_hash, "name": name})


def share_url(base: str, path: str, token: str | None = None) -> str:
    """The full link: base URL, path, and the token when the server has one."""
    return with_token(base.rstrip("/") + path, token)
