"""Partial and lazy clones: the remote a store fetches its missing tensors from on first read.

`coral clone --layers PATTERN` / `--lazy` (and `Remote.fetch(layers=..., lazy=True)`) bring every
commit and tree but only some tensors; `promise(repo, remote)` then records the remote as the
store's promisor (`coral.storage.promisor`), and a read of a tensor that is not here downloads
it — verified like every fetch — through `RemoteSource`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coral.errors import CoralError
from coral.remotes.config import RemoteConfigError, RemoteManager, redact_url
from coral.storage.promisor import Promisor, clear_promisor, write_promisor

if TYPE_CHECKING:
    from coral.remotes.remote import Remote
    from coral.storage.pack_store import PackStore
    from coral.version_control.repository import Repository

FACTORY = "coral.remotes.lazy:open_source"


class RemoteSource:
    """Fetches promised tensors from one remote."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.description = f"{remote.name} ({redact_url(remote.config.url)})"

    def fetch_tensors(self, store: PackStore, tensor_ids: Sequence[str]) -> None:
        self.remote.fetch_tensors(store, tensor_ids)


def open_source(store: PackStore, params: dict[str, Any]) -> RemoteSource:
    """The promisor factory named in promisor.json: the remote from the repository's remotes."""
    name = str(params.get("remote", ""))
    try:
        remote = RemoteManager(store.root.parent / "remotes.json").get(name)
    except RemoteConfigError:
        raise CoralError(
            f"this partial clone fetches missing tensors from remote {name!r}, which is gone",
            hint=f"add it again: coral remote add {name} URL",
        ) from None
    return RemoteSource(remote)


def promise(repo: Repository, remote: Remote) -> None:
    """Make `remote` the one this repository fetches missing tensors from (recorded by name;
    this process keeps using the given object, with any secrets it holds)."""
    manager = RemoteManager(repo.coral_dir / "remotes.json")
    if remote.name not in manager.list():  # so that a later session finds it by name
        manager.add(remote.config)
    write_promisor(repo.store.root, FACTORY, remote=remote.name)
    repo.store.promisor = Promisor(repo.store.root, RemoteSource(remote))


def unpromise(repo: Repository) -> bool:
    """Stop fetching on demand (reads of tensors not here fail again)."""
    repo.store.promisor = Promisor(repo.store.root)
    return clear_promisor(repo.store.root)
