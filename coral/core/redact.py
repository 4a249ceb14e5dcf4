"""Secrets out of URLs and text, before anything is printed or stored.

A URL keeps its scheme, host, port and path; a `user:password@` part becomes `***@` and the
value of a query parameter that carries a secret (`token`, `sig`, `X-Amz-Signature`, ...)
becomes `***`. `redact_text` does that to every URL inside a message (library errors quote the
URL they called) and masks `KEY=secret` pairs such as Azure's `AccountKey=...`.

>>> redact_url("http://user:pw@host:5000/x?token=abc&page=2")
'http://***@host:5000/x?token=***&page=2'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

MASK = "***"

# Query parameters (and KEY=value pairs in text) whose value is a credential; compared lowercase.
SECRET_KEYS = frozenset(
    {
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "auth",
        "authorization",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
        "accountkey",
        "sharedaccesssignature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
    }
)

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()\[\]{}`]+")
_QUERY_PAIR = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")  # up to the last @
_TEXT_PAIR = re.compile(
    r"(?<![A-Za-z0-9_\-])(AccountKey|SharedAccessSignature|sig|token|access_token|password|"
    r"api_key|apikey|secret|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)"
    r"=([^;&\s'\"]*[A-Za-z0-9][^;&\s'\"]*)",  # a value, not a placeholder such as "..."
    re.IGNORECASE,
)


def _mask_query(url: str) -> str:
    def sub(m: re.Match[str]) -> str:
        sep, key, value = m.group(1), m.group(2), m.group(3)
        if key.lower() in SECRET_KEYS and value:
            return f"{sep}{key}={MASK}"
        return m.group(0)

    head, hash_, fragment = url.partition("#")
    fragment = _QUERY_PAIR.sub(sub, "&" + fragment)[1:]  # OAuth puts tokens in the fragment
    return _QUERY_PAIR.sub(sub, head) + hash_ + fragment


def redact_url(url: str) -> str:
    """`url` without secrets: user info as `***@`, secret query values as `***` (anything that
    does not parse as a URL is treated as text, so it is never returned with a password)."""
    if not isinstance(url, str) or "://" not in url:
        return redact_text(url)
    try:
        parts = urlsplit(url)
        has_user = "@" in parts.netloc
    except ValueError:  # e.g. a bad IPv6 literal: fall back on the pattern
        has_user = "@" in url.split("://", 1)[1].split("/", 1)[0]
    out = _USERINFO.sub(rf"\1{MASK}@", url) if has_user else url
    return _mask_query(out)


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted and `AccountKey=...`-style secrets masked."""
    if not isinstance(text, str) or not text:
        return text
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return _TEXT_PAIR.sub(lambda m: f"{m.group(1)}={MASK}", text)


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(`url` without its user info, username, password); the names are percent-decoded."""
    from urllib.parse import unquote

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts._replace(netloc=host).geturl(), user, password
