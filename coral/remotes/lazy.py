"""Partial and lazy clones: the remote a store fetches its missing tensors from on first read.

`coral clone --layers PATTERN` / `--lazy` (and `Remote.fetch(layers=..., lazy=True)`) bring every
commit and tree but only some tensors; `promise(repo, remote)` then records the remote as the
store's promisor (`coral.storage.promisor`), and a read of a tensor that is not here downloads
it — verified like every fetch — through `RemoteSource`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, cast

from coral.remotes.config import RemoteConfig, RemoteConfigs, redact_url
from coral.storage.promisor import Promisor, clear_promisor, write_promisor

if TYPE_CHECKING:
    from coral.storage.pack_store import PackStore
    from coral.storage.store_view import StoreInternals
    from coral.version_control.repository import Repository

FACTORY = "coral.remotes.remote:open_promised_source"  # see remote.open_promised_source


class TensorRemote(Protocol):
    """What a lazy clone needs of a `Remote`: its name and config, and fetching tensors."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> RemoteConfig: ...

    def fetch_tensors(self, local_store: PackStore, tensor_ids: Sequence[str]) -> int: ...


class RemoteSource:
    """Fetches promised tensors from one remote."""

    def __init__(self, remote: TensorRemote) -> None:
        self.remote = remote
        self.description = f"{remote.name} ({redact_url(remote.config.url)})"

    def fetch_tensors(self, store: StoreInternals, tensor_ids: Sequence[str]) -> None:
        # the promisor hands over the PackStore it belongs to, typed by its helpers' view
        self.remote.fetch_tensors(cast("PackStore", store), tensor_ids)


def promise(repo: Repository, remote: TensorRemote) -> None:
    """Make `remote` the one this repository fetches missing tensors from (recorded by name;
    this process keeps using the given object, with any secrets it holds)."""
    manager = RemoteConfigs(repo.coral_dir / "remotes.json")
    if remote.name not in manager.list():  # so that a later session finds it by name
        manager.add(remote.config)
    write_promisor(repo.store.root, FACTORY, remote=remote.name)
    repo.store.promisor = Promisor(repo.store.root, RemoteSource(remote))


def unpromise(repo: Repository) -> bool:
    """Stop fetching on demand (reads of tensors not here fail again)."""
    repo.store.promisor = Promisor(repo.store.root)
    return clear_promisor(repo.store.root)
