"""Who may reach the dashboard: loopback by default; any other address only with a token,
which every request must then carry (`?token=`, `Authorization: Bearer`, or the cookie the
server sets after the first). No FastAPI here: `coral serve` checks before it starts one."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from pathlib import Path

from coral.errors import CoralError

COOKIE = "coral_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, `[::1]` allowed) is this machine's loopback."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def read_token_file(path: Path) -> str:
    """The token in a file (its first line, stripped); an error when it is empty."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip().splitlines()
    except OSError as exc:
        raise CoralError(
            f"cannot read the token file {path}: {exc.strerror or exc}",
            hint="give a readable file whose first line is the token",
        ) from None
    if not token or not token[0].strip():
        raise CoralError(f"the token file {path} is empty", hint="write a token on its first line")
    return token[0].strip()


def new_token() -> str:
    """A fresh random token (URL-safe, 32 bytes of entropy)."""
    return secrets.token_urlsafe(32)


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token."""
    if token is None and not is_loopback(host):
        raise CoralError(
            f"refusing to serve on {host} without a token: anyone who can reach it could read "
            "the repository",
            hint="add --token TOKEN (or --token-file PATH), or serve on 127.0.0.1",
        )
    if token is not None and len(token) < 8:
        raise CoralError("the token is too short", hint="use at least 8 characters")


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the server's."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())
