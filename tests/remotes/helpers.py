"""Helpers for the remote tests: seeded models, file remotes, bit-exact checks, damage."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coral.remotes.remote import Remote, RemoteConfig
from coral.storage.pack import pack_key
from coral.storage.pack_index import Location
from coral.version_control.repository import Repository


def model(seed: int, n: int = 3, shape: tuple[int, ...] = (32, 16)) -> dict[str, np.ndarray]:
    """`n` float32 tensors `layer{i}.weight` and an int64 `step`, all from `seed`."""
    rng = np.random.default_rng(seed)
    out = {f"layer{i}.weight": rng.standard_normal(shape).astype(np.float32) for i in range(n)}
    out["step"] = np.array([seed], dtype=np.int64)
    return out


def commit(repo: Repository, weights: Mapping[str, Any], message: str) -> str:
    repo.add_all_weights(weights)
    return repo.commit(message)


def file_url(path: Path) -> str:
    return path.absolute().as_uri()


def open_remote(path_or_url: Path | str, name: str = "origin") -> Remote:
    """A fresh Remote (own backend, own index cache) on a folder or URL."""
    url = path_or_url if isinstance(path_or_url, str) else file_url(path_or_url)
    return Remote.from_config(RemoteConfig.from_url(name, url))


def assert_bit_exact(repo: Repository, ref: str, expected: Mapping[str, Any]) -> None:
    """`ref` in `repo` holds exactly the tensors of `expected`: names, dtypes, shapes, bytes."""
    got = repo.get_all_weights(ref)
    assert sorted(got) == sorted(expected), (sorted(got), sorted(expected))
    for name, want in expected.items():
        want = np.asarray(want.data if hasattr(want, "data") else want)
        have = np.asarray(got[name].data)
        assert have.dtype == want.dtype, (name, have.dtype, want.dtype)
        assert have.shape == want.shape, (name, have.shape, want.shape)
        assert have.tobytes() == want.tobytes(), f"{name} differs"


def locate_on_remote(remote: Remote, object_id: str) -> Location:
    loc = remote.layout.refresh_index().get(object_id)
    assert loc is not None, f"{object_id} is not on the remote"
    return loc


def flip_remote_byte(
    remote_dir: Path, remote: Remote, object_id: str, where: float = 0.5, mask: int = 0x40
) -> Path:
    """Flip bits of one byte inside an object's record in a pack file under the remote folder."""
    loc = locate_on_remote(remote, object_id)
    path = remote_dir / pack_key(loc.pack_id)
    data = bytearray(path.read_bytes())
    data[loc.offset + min(loc.length - 1, int(loc.length * where))] ^= mask
    path.write_bytes(bytes(data))
    return path


def remote_pack_files(remote_dir: Path) -> list[Path]:
    return sorted((remote_dir / "packs").glob("*.pack"))


def local_refs(repo: Repository) -> dict[str, Any]:
    """Branches, tags, HEAD and tracking refs: what a failed fetch must leave as it was."""
    head = repo.refs.head()
    return {
        "branches": {b.name: b.commit for b in repo.list_branches()},
        "tags": {t.name: t.commit_hash for t in repo.list_tags()},
        "head": (head.branch, head.commit),
        "tracking": repo.remote_refs.list(),
    }
