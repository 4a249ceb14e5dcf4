"""`RegistryType` and `PublishResult`: where a model went and what came of it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from coral.core.redact import redact_text, redact_url, redact_value


class RegistryType(StrEnum):
    """A place Coral publishes models to."""

    HUGGINGFACE = "huggingface"
    MLFLOW = "mlflow"
    LOCAL = "local"


@dataclass
class PublishResult:
    """The outcome of one publish: on success `url` and `version` say where it went; on
    failure `success` is False and `error` says why. `metadata` holds at least `commit_ref`,
    the resolved `commit_hash` (when the ref resolved) and `weight_count`."""

    success: bool
    registry: RegistryType
    model_name: str
    version: str | None = None
    url: str | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    published_at: datetime = field(default_factory=lambda: datetime.now().astimezone())

    def redacted(self) -> PublishResult:
        """This result with every secret in a URL (user info, tokens in query strings) masked:
        what is printed, returned and stored."""
        return replace(
            self,
            model_name=redact_text(self.model_name),
            version=redact_text(self.version) if self.version else self.version,
            url=redact_url(self.url) if self.url else self.url,
            error=redact_text(self.error) if self.error else self.error,
            metadata=redact_value(self.metadata),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what `coral publish ... --json` prints)."""
        return {
            "success": self.success,
            "registry": self.registry.value,
            "model_name": self.model_name,
            "version": self.version,
            "url": self.url,
            "error": self.error,
            "metadata": self.metadata,
            "published_at": self.published_at.isoformat(),
        }
