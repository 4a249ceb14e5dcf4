"""`RemoteConfig` and `RemoteConfigs`: named remotes, kept in `.coral/remotes.json`.

Secrets given in a RemoteConfig are used for that process but never written to remotes.json
(credentials otherwise come from each cloud's own chain: environment variables, profiles).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from coral.core.redact import redact_url as redact_url  # public here too: remotes use it
from coral.errors import CoralError, InvalidNameError
from coral.storage.atomic_file import write_atomic
from coral.version_control.refnames import check_name

SCHEMES = {
    "s3": "s3",
    "minio": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "file": "local",
    "http": "http",  # `coral serve --remote` (coral/remotes/http_backend.py)
    "https": "http",
}
_SECRET_FIELDS = ("access_key", "secret_key", "token")


class RemoteConfigError(CoralError):
    default_hint = (
        "remote URLs look like s3://bucket/prefix, minio://host:port/bucket/prefix, "
        "gs://bucket/prefix, az://container/prefix, file:///path or http://host:port/remote/"
    )


@dataclass
class RemoteConfig:
    """Where a remote lives and how to reach it (chapter 8.3)."""

    name: str
    url: str
    backend: str = "local"  # "s3" | "gcs" | "azure" | "local"
    region: str | None = None
    endpoint_url: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)  # http(s): else token_file, else env
    token_file: str | None = None  # http(s): a file holding the token (its path is stored)
    ca_file: str | None = None  # https: a PEM certificate to trust (a self-signed server)
    auto_push: bool = False
    auto_pull: bool = False
    urls: list[str] = field(default_factory=list)  # extra URLs packs are spread over by hash

    def __post_init__(self) -> None:
        try:
            check_name(self.name, "remote")
        except InvalidNameError as exc:
            raise RemoteConfigError(f"bad remote name {self.name!r}: {exc.message}") from None
        if self.backend not in set(SCHEMES.values()):
            raise RemoteConfigError(
                f"unknown remote backend {self.backend!r}",
                hint="choose one of s3, gcs, azure, local, http",
            )
        if (self.token_file or self.ca_file) is not None and self.backend != "http":
            raise RemoteConfigError(
                f"remote {self.name!r} is not an http(s) remote: a token or CA file is not used",
                hint="tokens are for `coral serve --remote` URLs (http://HOST:PORT/remote/)",
            )

    @classmethod
    def from_url(cls, name: str, url: str, **options: Any) -> RemoteConfig:
        """A config from a URL; the scheme picks the backend (minio:// is S3 at host:port)."""
        parts = urlsplit(url)
        backend = SCHEMES.get(parts.scheme)
        if backend is None:
            raise RemoteConfigError(f"unsupported remote URL {redact_url(url)!r}")
        if parts.scheme == "minio" and "endpoint_url" not in options:
            if not parts.netloc:
                raise RemoteConfigError(f"minio URL needs host:port: {redact_url(url)!r}")
            options["endpoint_url"] = f"http://{parts.hostname}:{parts.port or 9000}"
        return cls(name=name, url=url, backend=backend, **options)

    def public_dict(self) -> dict[str, Any]:
        """Everything but the secrets (what remotes.json, logs and --json show)."""
        out = asdict(self)
        for key in _SECRET_FIELDS:
            out.pop(key, None)
        out["url"] = redact_url(self.url)
        return out


class RemoteConfigs:
    """Named remotes' configurations stored in a JSON file (no secrets in it); `RemoteManager`
    (in `remote.py`) adds opening them as `Remote`s."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._secrets: dict[str, dict[str, str | None]] = {}

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RemoteConfigError(
                f"cannot read {self.path}: {exc}", hint="fix or delete the file"
            ) from None
        remotes = doc.get("remotes", {}) if isinstance(doc, dict) else {}
        return remotes if isinstance(remotes, dict) else {}

    def _write(self, remotes: dict[str, dict[str, Any]]) -> None:
        write_atomic(self.path, json.dumps({"remotes": remotes}, indent=2, sort_keys=True) + "\n")

    def add(self, config: RemoteConfig, *, replace_existing: bool = True) -> RemoteConfig:
        """Store a remote (its secrets stay in this manager's memory only)."""
        remotes = self._read()
        if config.name in remotes and not replace_existing:
            raise RemoteConfigError(
                f"remote {config.name!r} already exists",
                hint=f"remove it first: coral remote remove {config.name}",
            )
        remotes[config.name] = config.public_dict()
        self._write(remotes)
        if any(getattr(config, k) for k in _SECRET_FIELDS):
            self._secrets[config.name] = {k: getattr(config, k) for k in _SECRET_FIELDS}
        return config

    def list(self) -> list[str]:
        return sorted(self._read())

    def config(self, name: str) -> RemoteConfig:
        remotes = self._read()
        if name not in remotes:
            known = ", ".join(sorted(remotes)) or "none"
            raise RemoteConfigError(
                f"no remote named {name!r} (known: {known})",
                hint="add one with `coral remote add NAME URL`",
            )
        fields = {k: v for k, v in remotes[name].items() if k in RemoteConfig.__dataclass_fields__}
        config = RemoteConfig(**fields)
        secrets = self._secrets.get(name)
        if secrets:
            config = replace(
                config,
                access_key=secrets.get("access_key"),
                secret_key=secrets.get("secret_key"),
                token=secrets.get("token"),
            )
        return config

    def remove(self, name: str) -> bool:
        remotes = self._read()
        if name not in remotes:
            return False
        del remotes[name]
        self._write(remotes)
        self._secrets.pop(name, None)
        return True


def read_token_file(path: str) -> str:
    """The token in `path` (`~` expanded, surrounding whitespace dropped): a RemoteConfigError
    naming the file when it is missing, unreadable or empty."""
    where = Path(path).expanduser()
    try:
        token = where.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RemoteConfigError(
            f"cannot read the token file {where}: {exc.strerror or exc}",
            hint="write the token from `coral serve token create` there (chmod 600)",
        ) from None
    if not token:
        raise RemoteConfigError(
            f"the token file {where} is empty",
            hint="write the token from `coral serve token create` there (chmod 600)",
        )
    return token
