"""A remote listing several URLs spreads its packs over them by hash (recommendation 13)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coral.remotes.remote import Remote, RemoteConfig
from coral.version_control.repository import Repository


def test_packs_spread_over_every_url_and_read_back(tmp_path: Path) -> None:
    urls = [(tmp_path / f"shard{i}").as_uri() for i in range(3)]
    config = RemoteConfig.from_url("origin", urls[0], urls=urls[1:])
    repo = Repository.init(tmp_path / "a")
    rng = np.random.default_rng(0)
    weights = {}
    for step in range(8):  # a pack of chunks, one of tensors, one of commits per push
        weights = {f"w{i}": rng.standard_normal(1000).astype(np.float32) for i in range(3)}
        repo.add_all_weights(weights)
        repo.commit(f"step {step}")
        assert Remote.from_config(config).push(repo).success
    packs = [list((tmp_path / f"shard{i}" / "packs").glob("*.pack")) for i in range(3)]
    assert sum(len(p) for p in packs) == 24
    assert sum(1 for p in packs if p) >= 2, "packs should land on more than one shard"
    assert not (tmp_path / "shard1" / "refs").exists()  # refs live on the first URL only
    clone = Repository.init(tmp_path / "b")
    result = Remote.from_config(config).pull(clone)
    assert result.success and result.pulled_commits == 8
    got = clone.get_all_weights("HEAD")
    assert all(got[k].data.tobytes() == v.tobytes() for k, v in weights.items())
    assert len(Remote.from_config(config).list_remote_weights()) == 24
