"""Who may read and push through `coral serve --remote`: the ACL file and its tokens.

The ACL file is TOML; each token has a name, the SHA-256 of its secret (never the secret) and
fnmatch patterns of what it may read and write:

    [tokens.ci]
    sha256 = "9f86d0…"          # sha256 of the token, hex
    read = ["*"]                # branches (and `tags/NAME`) it may fetch
    write = ["feature/*"]       # branches it may push; writing implies reading

A pattern matches a branch name (`main`, `feature/*`) or, for tags, `tags/NAME`; `*` matches
every branch and tag. Read patterns choose which refs a token sees; the packs are shared by all
branches, so they hide names, not data: give a token that must not see some weights no read
access at all. Tokens are 32 random bytes (URL-safe base64 behind a `coral_` prefix),
so a plain SHA-256 is a sound hash: nothing short enough to guess hides behind it. No FastAPI
here: `coral serve token create` needs none.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import re
import secrets
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from coral.errors import CoralError
from coral.storage.atomic_file import write_atomic

TOKEN_PREFIX = "coral_"
log = logging.getLogger("coral.web.remote")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEADER = (
    "# Tokens of `coral serve --remote`: hashes only (sha256 of the token), never the tokens.\n"
    "# Patterns match branch names (`main`, `feature/*`) and `tags/NAME`; write implies read.\n"
)


class AclError(CoralError):
    default_hint = (
        "fix the ACL file, or create tokens with `coral serve token create NAME --acl FILE`"
    )


def hash_token(token: str) -> str:
    """The hex SHA-256 the ACL file keeps of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh token: `coral_` and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def ref_subject(ref: str) -> str:
    """What patterns match for a remote ref: `heads/main` -> `main`, `tags/v1` stays."""
    return ref[len("heads/") :] if ref.startswith("heads/") else ref


@dataclass(frozen=True)
class Grant:
    """What one token may do."""

    name: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()

    def may_write(self, ref: str) -> bool:
        """Whether it may move `ref` (`heads/main`, `tags/v1`)."""
        return _matches(ref_subject(ref), self.write)

    def may_read(self, ref: str) -> bool:
        return _matches(ref_subject(ref), (*self.read, *self.write))

    @property
    def reads_anything(self) -> bool:
        return bool(self.read or self.write)

    @property
    def writes_anything(self) -> bool:
        return bool(self.write)

    def describe_write(self) -> str:
        return ", ".join(self.write) if self.write else "nothing (read-only)"


def _matches(subject: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(subject, p) for p in patterns)


@dataclass
class TokenEntry:
    name: str
    sha256: str
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    created: float = 0.0

    @property
    def grant(self) -> Grant:
        return Grant(self.name, tuple(self.read), tuple(self.write))

    def public_dict(self) -> dict[str, Any]:
        """Everything but the hash (what `token list --json` shows)."""
        return {"name": self.name, "read": self.read, "write": self.write, "created": self.created}


class AccessList:
    """The tokens of one ACL file."""

    def __init__(self, path: Path | str, tokens: dict[str, TokenEntry] | None = None) -> None:
        self.path = Path(path)
        self.tokens = tokens or {}

    @classmethod
    def load(cls, path: Path | str, *, missing_ok: bool = False) -> AccessList:
        """Read an ACL file (an empty list for a missing one when `missing_ok`)."""
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if missing_ok:
                return cls(path)
            raise AclError(
                f"no ACL file at {path}",
                hint=f"create a token first: coral serve token create NAME --acl {path}",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AclError(f"cannot read the ACL file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise AclError(f"the ACL file {path} is not valid TOML: {exc}") from None
        tokens = doc.get("tokens", {})
        if not isinstance(tokens, dict):
            raise AclError(f"{path}: `tokens` must be a table of [tokens.NAME] entries")
        return cls(path, {name: _entry(path, name, body) for name, body in tokens.items()})

    def save(self) -> None:
        """Write the file atomically, readable by its owner only."""
        doc = {
            "tokens": {
                e.name: {"sha256": e.sha256, "read": e.read, "write": e.write, "created": e.created}
                for e in sorted(self.tokens.values(), key=lambda e: e.name)
            }
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, _HEADER + tomli_w.dumps(doc), mode=0o600)

    def authenticate(self, token: str | None) -> Grant | None:
        """The grant of the token presented, None when it is unknown (constant-time compare)."""
        if not token:
            return None
        digest = hash_token(token)
        found = None
        for entry in self.tokens.values():
            if hmac.compare_digest(digest, entry.sha256):
                found = entry
        return found.grant if found is not None else None

    def create(
        self,
        name: str,
        *,
        read: Iterable[str] = (),
        write: Iterable[str] = (),
        replace: bool = False,
    ) -> str:
        """Add a token (reading `*` unless `read` says otherwise), save, and return its
        secret: the only time it exists outside the client that keeps it."""
        if not _NAME.match(name):
            raise AclError(
                f"bad token name {name!r}",
                hint="use letters, digits and . _ - (up to 64), starting with a letter or digit",
            )
        if name in self.tokens and not replace:
            raise AclError(
                f"a token named {name!r} already exists in {self.path}",
                hint="pick another name, or pass --replace to issue a new secret for it",
            )
        reads, writes = _patterns(read) or ["*"], _patterns(write)
        token = new_token()
        self.tokens[name] = TokenEntry(name, hash_token(token), reads, writes, time.time())
        self.save()
        return token

    def revoke(self, name: str) -> TokenEntry:
        entry = self.tokens.pop(name, None)
        if entry is None:
            known = ", ".join(sorted(self.tokens)) or "none"
            raise AclError(
                f"no token named {name!r} in {self.path} (known: {known})",
                hint=f"list them with `coral serve token list --acl {self.path}`",
            )
        self.save()
        return entry


def _patterns(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        for pattern in (p.strip() for p in value.split(",")):
            if not pattern:
                continue
            if any(c.isspace() for c in pattern):
                raise AclError(f"bad pattern {pattern!r}: no spaces in branch patterns")
            if pattern not in out:
                out.append(pattern)
    return out


def _entry(path: Path, name: str, body: Any) -> TokenEntry:
    where = f"{path}: token {name!r}"
    if not isinstance(body, dict):
        raise AclError(f"{where} must be a table")
    if "token" in body or "secret" in body:
        raise AclError(
            f"{where} holds a plain-text secret",
            hint="remove it and keep only `sha256 = ...` (coral serve token create writes it)",
        )
    digest = str(body.get("sha256", "")).lower()
    if not _HEX64.match(digest):
        raise AclError(f'{where} needs `sha256 = "<64 hex digits>"`')
    lists = {}
    for key in ("read", "write"):
        value = body.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AclError(f"{where}: `{key}` must be a list of patterns")
        lists[key] = _patterns(value)
    created = body.get("created", 0.0)
    return TokenEntry(
        name,
        digest,
        lists["read"],
        lists["write"],
        float(created) if isinstance(created, int | float) else 0.0,
    )


class WatchedAccessList:
    """An ACL file re-read when it changes (tokens created while the server runs count); a
    file broken by an edit in progress keeps the last good list (and is logged), a deleted one
    lets nobody in."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._acl = AccessList(self.path)
        self._loaded = False
        self.current()  # a broken file is an error at startup, not at the first request

    def current(self) -> AccessList:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and stamp is not None:
            return self._acl
        try:
            self._acl = AccessList.load(self.path, missing_ok=self._loaded)
        except AclError as exc:
            if not self._loaded:
                raise
            log.warning("keeping the previous tokens: %s", exc.message)
        self._stamp, self._loaded = stamp, True
        return self._acl
