"""Promised objects: a store whose tensors may live elsewhere until first read (partial clones).

A partial or lazy clone leaves some tensors on the remote it came from. The store then holds
`promisor.json` naming a factory — `"module:function"`, a module of the `coral` package — and
its parameters (the remote's name). On a read that misses, the store calls the factory once to
get an `ObjectSource` and asks it for the missing tensors; they arrive verified through
`PackStore.install`. Storage never imports the layer that implements the source (remotes sits
above it): the factory is named by the file, in the manner of git's `remote.<name>.promisor`.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from coral.errors import CoralError, ObjectNotFoundError
from coral.storage.atomic_file import write_atomic
from coral.storage.base import TENSOR

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals

PROMISOR_FILE = "promisor.json"


class ObjectSource(Protocol):
    """Where promised tensors come from."""

    description: str

    def fetch_tensors(self, store: StoreInternals, tensor_ids: Sequence[str]) -> None:
        """Install the tensors (and every chunk they need) into `store`, verified."""


class Promisor:
    """The store's link to its promisor: loaded on the first miss, then kept."""

    def __init__(self, root: Path, source: ObjectSource | None = None) -> None:
        self.path = root / PROMISOR_FILE
        self._source = source
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.path.is_file()

    def describe(self) -> str | None:
        """`origin` for messages (None when nothing is promised)."""
        doc = self._read()
        return None if doc is None else str(doc.get("params", {}).get("remote", "a remote"))

    def fetch_missing(self, store: StoreInternals, tensor_ids: Iterable[str]) -> bool:
        """Fetch the tensors `store` lacks; False when it promises nothing. A failed fetch is
        an ObjectNotFoundError saying where from."""
        ids = [t for t in tensor_ids if not store._has_fresh(TENSOR, t)]
        if not ids or not self.configured:
            return False
        try:
            self.fetch(store, ids)
        except CoralError as exc:
            raise ObjectNotFoundError(
                f"tensor {ids[0]} is not in this partial clone and fetching it from "
                f"{self.describe()} failed: {exc.message}",
                hint=exc.hint or "check the remote is reachable, then read it again",
            ) from None
        return True

    def fetch(self, store: StoreInternals, tensor_ids: Sequence[str]) -> bool:
        """Ask the source for the tensors; False when this store promises nothing."""
        source = self._open(store)
        if source is None:
            return False
        source.fetch_tensors(store, list(dict.fromkeys(tensor_ids)))
        return True

    def _open(self, store: StoreInternals) -> ObjectSource | None:
        with self._lock:
            if self._source is None:
                doc = self._read()
                if doc is None:
                    return None
                self._source = _load_factory(str(doc.get("factory", "")))(
                    store, dict(doc.get("params", {}))
                )
            return self._source

    def _read(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CoralError(
                f"cannot read {self.path}: {exc}",
                hint="delete it to stop fetching missing tensors on demand",
            ) from None
        return doc if isinstance(doc, dict) else None


def write_promisor(root: Path, factory: str, **params: Any) -> None:
    """Record (replace) the store's promisor."""
    _load_factory(factory)  # refuse a factory that cannot be loaded now
    write_atomic(
        root / PROMISOR_FILE, json.dumps({"factory": factory, "params": params}, indent=2) + "\n"
    )


def clear_promisor(root: Path) -> bool:
    path = root / PROMISOR_FILE
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed


def _load_factory(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name.startswith("coral.") or not attr.isidentifier():
        raise CoralError(
            f"{PROMISOR_FILE} names {spec!r}, not a Coral module's function",
            hint="delete the file to stop fetching missing tensors on demand",
        )
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise CoralError(f"{PROMISOR_FILE}: cannot load {spec!r}: {exc}") from None
