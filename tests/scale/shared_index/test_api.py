"""The shared index's API, reference choice through Redis, and its `coral config` keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.core.lsh_index import LSHConfig
from coral.core.redis_lsh import RedisLSHIndex
from coral.core.weight_tensor import WeightTensor
from coral.version_control import shared_index as si
from coral.version_control.objects import Tree
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.servers.redis_server import redis_server

from .conftest import base_model, fine_tune

pytestmark = pytest.mark.server


def test_query_codes_finds_every_key_within_fifteen_bits(redis_url: str, namespace: str) -> None:
    index = RedisLSHIndex(10, LSHConfig(16, 8, seed=1), redis_url=redis_url, namespace=namespace)
    rng = np.random.default_rng(0)
    keys = {}
    for i in range(200):
        fp = int.from_bytes(rng.bytes(16), "little")
        index.insert_codes(si.band_codes(fp), f"k{i}")
        keys[f"k{i}"] = fp
    for name, fp in list(keys.items())[:40]:
        flipped = fp
        for bit in rng.choice(128, size=15, replace=False):
            flipped ^= 1 << int(bit)
        got = dict(index.query_codes(si.band_codes(flipped), 5))
        assert got.get(name) == 15, name
    with pytest.raises(ValueError):
        index.query_codes([1, 2], 5)


def test_find_similar_uses_only_present_tensors(redis_url: str, namespace: str) -> None:
    from coral.storage.fingerprint_index import FingerprintIndex

    base = base_model(64)
    tuned = fine_tune(base, 1, "")
    local = FingerprintIndex(":memory:")
    index = si.SharedIndex(
        redis_url,
        namespace,
        holder="m1:/repo",
        similarity_threshold=0.99,
        fingerprint=local.fingerprint,
    )
    weights = {n: WeightTensor(v) for n, v in base.items()}
    ids = {n: w.compute_hash() for n, w in weights.items()}
    assert index.add_many((ids[n], w) for n, w in weights.items()) == 3
    query = WeightTensor(tuned["encoder.weight"])
    found = index.find_similar(query, present=lambda t: True)
    assert [t for t, _ in found] == [ids["encoder.weight"]] and found[0][1] > 0.99
    assert index.find_similar(query, present=lambda t: False) == []
    assert index.holders(ids["head.weight"]) == ["m1:/repo"]
    assert ids["head.weight"] in index and "nope" not in index
    # publishing happens once per holder and namespace
    rows = [("x" * 64, (4,), "float32", 12345)]
    assert index.publish(lambda: rows) == 1 and index.publish(lambda: rows) == 0
    index.close()


def test_reference_choice_prefers_the_shared_base(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    """In one process: repository B stores a fine-tune as a delta of A's base (both local)."""
    base = base_model(64)
    settings = f'[similarity]\nbackend = "{redis_url}"\nnamespace = "{namespace}"\n'
    with Repository.init(tmp_path / "a") as a:
        (a.coral_dir / "config.toml").write_text(settings)
    with Repository(tmp_path / "a") as a:
        a.add_all_weights(base)
        a.commit("base")
    with Repository.init(tmp_path / "b") as b:
        (b.coral_dir / "config.toml").write_text(settings)
    with Repository(tmp_path / "b") as b:
        # the base, as if fetched: in B's store, not in B's own fingerprint index
        b.store.store_many([(WeightTensor(v, name=n), None) for n, v in base.items()])
        assert len(b.writer.fingerprint_index()) == 0
        tuned = fine_tune(base, 2, "ft.")
        ref = b.writer._choose_reference(WeightTensor(tuned["ft.encoder.weight"]), Tree())
        assert ref == WeightTensor(base["encoder.weight"]).compute_hash()
        b.add_all_weights(tuned)
        b.commit("fine-tune")
        got = b.get_all_weights()["ft.head.weight"].data
        assert got.tobytes() == tuned["ft.head.weight"].tobytes()


def test_redis_dying_mid_session_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(si, "_warned", set())
    with redis_server(tmp_path / "redis") as url:
        with Repository.init(tmp_path / "r") as r:
            (r.coral_dir / "config.toml").write_text(f'[similarity]\nbackend = "{url}"\n')
        repo = Repository(tmp_path / "r")
        repo.add_all_weights(base_model(32))
        repo.commit("with redis")
        assert repo.writer.shared_index() is not None
    # the server is gone: the next commits still work, with one warning
    with caplog.at_level("WARNING", logger="coral.similarity"):
        for step in range(2):
            repo.add_all_weights(fine_tune(base_model(32), step, f"s{step}."))
            repo.commit(f"step {step}")
    repo.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "coral.similarity"]
    assert warnings == [f"warning: shared index {url} failed; local bases only"]
    with Repository(tmp_path / "r") as again:
        assert len(again.get_all_weights()) == 3 + 3 + 3


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("similarity.backend", "http://host", "neither local nor a Redis URL"),
        ("similarity.backend", "redis://host:port/0", "neither local nor a Redis URL"),
        ("similarity.backend", "redis://host/zero", "not a Redis URL"),
        ("similarity.namespace", "a b", "bad similarity.namespace"),
    ],
)
def test_config_refuses_bad_values(tmp_path: Path, key: str, value: str, fragment: str) -> None:
    Repository.init(tmp_path / "r").close()
    result = CliRunner().invoke(app, ["-C", str(tmp_path / "r"), "config", "set", key, value])
    assert_user_error(result, fragment)


def test_config_keys_defaults_and_profiles(tmp_path: Path) -> None:
    Repository.init(tmp_path / "r").close()
    runner = CliRunner()
    base = ["-C", str(tmp_path / "r")]
    listed = runner.invoke(app, [*base, "config", "list", "--all"])
    assert 'similarity.backend = "local"' in listed.stdout
    assert 'similarity.namespace = "coral"' in listed.stdout
    done = runner.invoke(
        app, [*base, "config", "set", "similarity.backend", "redis://127.0.0.1:6379/0"]
    )
    assert done.exit_code == 0, done.output
    assert "redis://127.0.0.1:6379/0" in (tmp_path / "r/.coral/config.toml").read_text()
    profile = runner.invoke(
        app, [*base, "config", "profile", "create", "p", "--set", "similarity.backend=local"]
    )
    assert_user_error(profile, "cannot be part of a profile")
