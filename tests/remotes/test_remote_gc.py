"""`coral remote gc`: packs no ref needs are deleted once older than the grace period; what
the refs need — history, trees, model files, tensors, delta bases — always stays; pushes do not
move refs while gc holds its lock."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.remotes.remote_gc import GC_LOCK, RemoteGCBusyError
from coral.storage.backend import PutMode
from tests.remotes.helpers import (
    assert_bit_exact,
    commit,
    file_url,
    model,
    open_remote,
    remote_pack_files,
)


def _force_pushed_away(make_repo, remote_dir: Path) -> tuple[object, list[dict]]:
    """A history whose second commit was force-pushed away: its packs are garbage."""
    a = make_repo("a")
    first = model(0, n=3, shape=(64, 64))
    commit(a, first, "one")
    a.add_file("config.json", b'{"layers": 3}')
    a.commit("config")
    assert open_remote(remote_dir).push(a).success
    b = make_repo("b")
    assert open_remote(remote_dir).pull(b).success
    commit(b, model(9, n=3, shape=(64, 64)), "doomed")
    assert open_remote(remote_dir).push(b).success
    assert open_remote(remote_dir).push(a, force=True).success  # main back to a's tip
    return a, [first]


def test_gc_deletes_only_unreachable_old_packs(make_repo, remote_dir: Path, tmp_path) -> None:
    _, (first,) = _force_pushed_away(make_repo, remote_dir)
    before = remote_pack_files(remote_dir)
    young = open_remote(remote_dir).gc()  # default grace: everything is too young
    assert young.deleted == [] and young.young >= 1
    dry = open_remote(remote_dir).gc(grace_seconds=0, dry_run=True)
    assert dry.deleted and remote_pack_files(remote_dir) == before
    done = open_remote(remote_dir).gc(grace_seconds=0)
    assert sorted(done.deleted) == sorted(dry.deleted) and done.bytes_freed > 0
    assert len(remote_pack_files(remote_dir)) == len(before) - len(done.deleted)
    assert not (remote_dir / GC_LOCK).exists()
    clone = make_repo("c")
    assert open_remote(remote_dir).pull(clone).success
    assert_bit_exact(clone, "HEAD", first)
    assert clone.get_files("HEAD") == {"config.json": b'{"layers": 3}'}
    assert clone.fsck().ok
    assert open_remote(remote_dir).gc(grace_seconds=0).deleted == []  # nothing left to take


def test_delta_bases_of_live_tensors_are_kept(make_repo, remote_dir: Path) -> None:
    a = make_repo("a")
    base = model(1, n=2, shape=(128, 128))
    versions = [base]
    commit(a, base, "v0")
    for i in range(1, 4):
        nxt = {k: (v + np.float32(1e-3 * i)).astype(v.dtype) for k, v in base.items()}
        commit(a, nxt, f"v{i}")
        versions.append(nxt)
    a.store.repack()
    assert open_remote(remote_dir).push(a).success
    assert open_remote(remote_dir).gc(grace_seconds=0).deleted == []
    clone = make_repo("c")
    assert open_remote(remote_dir).pull(clone).success
    for i, v in enumerate(reversed(versions)):
        assert_bit_exact(clone, f"HEAD~{i}", v)


def test_push_does_not_move_refs_while_gc_holds_the_lock(make_repo, remote_dir: Path) -> None:
    a = make_repo("a")
    commit(a, model(0), "one")
    remote = open_remote(remote_dir)
    assert remote.push(a).success
    remote.backend.put(GC_LOCK, b"{}", PutMode.CREATE)
    with pytest.raises(RemoteGCBusyError):
        open_remote(remote_dir).gc(grace_seconds=0)
    tip = commit(a, model(1), "two")
    blocked = open_remote(remote_dir).push(a)
    assert not blocked.success and "gc" in blocked.errors[0]
    assert open_remote(remote_dir).list_refs()["heads/main"] != tip
    remote.backend.delete(GC_LOCK)
    assert open_remote(remote_dir).push(a).success
    assert open_remote(remote_dir).list_refs()["heads/main"] == tip


def test_cli_remote_gc(make_repo, remote_dir: Path) -> None:
    a, _ = _force_pushed_away(make_repo, remote_dir)
    a.close()
    runner = CliRunner()
    repo = str(remote_dir.parent / "a")
    res = runner.invoke(app, ["-C", repo, "remote", "add", "origin", file_url(remote_dir)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["-C", repo, "remote", "gc", "--grace", "0", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "would delete" in res.output
    res = runner.invoke(app, ["-C", repo, "remote", "gc", "--grace", "0", "--json"])
    assert res.exit_code == 0, res.output
    assert '"packs_deleted"' in res.output
    deleted = len(json.loads(res.output)["packs_deleted"])
    res = runner.invoke(app, ["-C", repo, "audit", "--action", "remote-gc", "--json"])
    assert res.exit_code == 0, res.output
    (entry,) = json.loads(res.output)  # the real run only: the dry run changed nothing
    assert entry["target"] == "origin" and entry["outcome"] == "ok"
    assert entry["detail"]["packs_deleted"] == deleted >= 1
    assert entry["detail"]["bytes_freed"] > 0
