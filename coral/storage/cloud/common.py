"""What the object-store backends share: how a library error is classified (`Failure`),
secret redaction, and the parsing of timestamps, etags and endpoint URLs."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable
from enum import Enum
from typing import Any
from urllib.parse import urlsplit


class Failure(Enum):
    """What a library error means for the backend."""

    MISSING = "missing"  # the object (or its bucket: checked separately) does not exist
    NO_CONTAINER = "no-container"  # the bucket / container does not exist
    PRECONDITION = "precondition"  # If-None-Match / If-Match / generation condition failed
    AUTH = "auth"  # credentials missing, wrong or without permission
    TRANSIENT = "transient"  # connection trouble, timeouts, 5xx, throttling
    BAD_RANGE = "bad-range"  # a range starting at or past the end
    OTHER = "other"


_SECRET_PATTERNS = [
    re.compile(r"(AccountKey=)[^;\s]+", re.IGNORECASE),
    re.compile(r"(SharedAccessSignature=)[^;\s]+", re.IGNORECASE),
    re.compile(r"([?&]sig=)[^&\s]+", re.IGNORECASE),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret (and anything shaped like an account key) masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


def as_timestamp(value: Any) -> float:
    """Seconds since the epoch from a datetime, a number or an ISO-8601 string (else now)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return as_timestamp(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    return time.time()


def plain_etag(etag: Any) -> str:
    """An etag without the HTTP quotes (S3 and Azure quote theirs)."""
    return str(etag).strip('"')


def etag_is_sendable(etag: str) -> bool:
    """Whether an etag can go into an If-Match header (else no object can have it)."""
    return (
        bool(etag) and etag.isascii() and etag.isprintable() and not any(c in etag for c in '" ,')
    )


def public_url(url: str) -> str:
    """`url` without user info, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


def reason(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """The first line of a library error, short and redacted, for a one-line message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(text) > 200:
        text = text[:197] + "..."
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, secrets)
