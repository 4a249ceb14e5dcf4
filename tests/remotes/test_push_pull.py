"""Push, fetch and pull over `file://` remotes: incremental transfers, refs, verification, races."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import coral.remotes.transfer as transfer_module
from coral.errors import CorruptObjectError, RemoteError
from coral.remotes.layout import FORMAT_KEY, NonFastForwardError, RemoteFormatError
from coral.storage.pack import PackWriter
from coral.version_control.objects import COMMIT, TAG, TREE
from tests.remotes.helpers import (
    assert_bit_exact,
    commit,
    file_url,
    flip_remote_byte,
    local_refs,
    model,
    open_remote,
    remote_pack_files,
)

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("CORAL_CRASH_KILLS", "5"))


@pytest.fixture
def pair(make_repo, remote_dir):
    """Repository A with one commit pushed to the remote, and B cloned from it."""
    a = make_repo("a")
    c0 = commit(a, model(0), "base")
    assert open_remote(remote_dir).push(a).success
    b = make_repo("b")
    assert open_remote(remote_dir).pull(b).updated_branch == "main"
    return a, b, c0


# -- incremental transfers ----------------------------------------------------------------------
def test_incremental_push_uploads_only_new_objects(make_repo, remote_dir) -> None:
    repo = make_repo("a")
    weights = model(1, n=4, shape=(256, 256))  # 256 KiB each
    commit(repo, weights, "one")
    remote = open_remote(remote_dir)
    first = remote.push(repo)
    assert first.pushed_weights == 5 and first.pushed_commits == 1
    assert first.refs == {"heads/main": (None, repo.head_commit())}

    again = open_remote(remote_dir).push(repo)
    assert again.success
    assert (again.pushed_objects, again.pushed_weights, again.bytes_transferred) == (0, 0, 0)
    assert again.refs == {}

    rng = np.random.default_rng(99)
    changed = dict(weights)
    noise = rng.standard_normal((256, 256)).astype(np.float32) * np.float32(0.01)
    changed["layer2.weight"] = weights["layer2.weight"] + noise
    packs_before = {p.name: p.stat().st_size for p in (repo.coral_dir / "objects").rglob("*.pack")}
    c2 = commit(repo, changed, "fine-tune layer2")
    new_local = sum(
        p.stat().st_size
        for p in (repo.coral_dir / "objects").rglob("*.pack")
        if p.name not in packs_before
    )
    row = repo.storage_history()[-1]
    assert row["hash"] == c2 and row["new_tensors"] == 1
    third = open_remote(remote_dir).push(repo)
    assert third.success
    assert third.pushed_weights == 1 and third.pushed_commits == 1
    assert third.bytes_transferred <= 1.2 * row["stored_bytes"], (third, row)
    assert third.bytes_transferred <= 1.2 * new_local
    assert third.bytes_transferred < first.bytes_transferred / 3

    fresh = make_repo("fresh")
    pulled = open_remote(remote_dir).pull(fresh)
    assert pulled.pulled_commits == 2 and pulled.pulled_weights == 6
    assert_bit_exact(fresh, "HEAD", changed)
    assert_bit_exact(fresh, "HEAD~1", weights)
    # a second fetch downloads nothing
    refetch = open_remote(remote_dir).fetch(fresh)
    assert (refetch.pulled_objects, refetch.bytes_transferred) == (0, 0)


def test_fetch_downloads_only_what_is_missing(pair, remote_dir) -> None:
    a, b, _ = pair
    changed = model(0)
    changed["layer1.weight"] = changed["layer1.weight"] * np.float32(2)
    commit(a, changed, "scale layer1")
    pushed = open_remote(remote_dir).push(a)
    fetched = open_remote(remote_dir).fetch(b)
    assert fetched.pulled_weights == 1 and fetched.pulled_commits == 1
    assert 0 < fetched.bytes_transferred <= pushed.bytes_transferred
    assert fetched.updated_branch is None  # fetch moves no branch
    assert b.resolve_ref("origin/main") == a.head_commit()
    assert b.head_commit() != a.head_commit()
    assert_bit_exact(b, "origin/main", changed)


# -- refs ---------------------------------------------------------------------------------------
def test_non_fast_forward_push_is_rejected_and_force_overwrites(pair, remote_dir) -> None:
    a, b, c0 = pair
    cb = commit(b, model(2), "b's work")
    assert open_remote(remote_dir).push(b).refs == {"heads/main": (c0, cb)}
    ca = commit(a, model(3), "a's work")

    rejected = open_remote(remote_dir).push(a)
    assert not rejected.success and rejected.refs == {}
    assert len(rejected.errors) == 1
    message = rejected.errors[0]
    assert "non-fast-forward" in message and "main" in message and "pull" in message
    assert open_remote(remote_dir).list_refs() == {"heads/main": cb}
    assert a.remote_refs.get("origin", "heads/main") == c0  # nothing recorded for the rejection

    forced = open_remote(remote_dir).push(a, force=True)
    assert forced.success and forced.refs == {"heads/main": (cb, ca)}
    assert open_remote(remote_dir).list_refs() == {"heads/main": ca}
    assert a.resolve_ref("origin/main") == ca
    fresh_pull = open_remote(remote_dir).pull(b, force=True)  # b resets to the forced history
    assert fresh_pull.updated_branch == "main" and b.head_commit() == ca
    assert_bit_exact(b, "HEAD", model(3))


def test_pull_fast_forwards_and_diverged_pull_leaves_the_branch(pair, remote_dir) -> None:
    a, b, c0 = pair
    c1 = commit(a, model(1), "a1")
    c2 = commit(a, model(2), "a2")
    open_remote(remote_dir).push(a)

    ff = open_remote(remote_dir).pull(b)
    assert ff.success and ff.updated_branch == "main"
    assert ff.pulled_commits == 2
    assert b.head_commit() == c2 and b.resolve_ref("main~1") == c1
    assert_bit_exact(b, "HEAD", model(2))
    assert b.reflog("main", limit=1)[0].new == c2

    # nothing new: a no-op
    again = open_remote(remote_dir).pull(b)
    assert again.success and again.updated_branch is None and again.pulled_objects == 0

    # ahead of the remote: nothing to pull, branch kept
    cb = commit(b, model(4), "b ahead")
    ahead = open_remote(remote_dir).pull(b)
    assert ahead.success and ahead.updated_branch is None and b.head_commit() == cb

    # diverged: error, branch kept, tracking ref moved
    c3 = commit(a, model(5), "a3")
    open_remote(remote_dir).push(a)
    before = b.head_commit()
    diverged = open_remote(remote_dir).pull(b)
    assert not diverged.success and diverged.updated_branch is None
    assert "diverged" in diverged.errors[0] and "origin/main" in diverged.errors[0]
    assert b.head_commit() == before == cb
    assert b.resolve_ref("origin/main") == c3
    assert_bit_exact(b, "origin/main", model(5))
    assert c0 in {c.commit_hash for c in b.log()}


def test_pull_of_a_branch_the_remote_lacks(pair, remote_dir) -> None:
    _, b, _ = pair
    result = open_remote(remote_dir).pull(b, branch="nope")
    assert not result.success and "nope" in result.errors[0]


def test_branches_and_tags_travel(make_repo, remote_dir) -> None:
    a = make_repo("a")
    c0 = commit(a, model(0), "base")
    a.tag_version("v1", description="first release", metrics={"accuracy": 0.91, "loss": 0.2})
    a.create_branch("experiment")
    a.checkout("experiment")
    c1 = commit(a, model(1), "try")
    a.checkout("main")
    pushed = open_remote(remote_dir).push(a)
    assert pushed.success
    refs = open_remote(remote_dir).list_refs()
    assert refs == {"heads/main": c0, "heads/experiment": c1, "tags/v1": c0}

    b = make_repo("b")
    pulled = open_remote(remote_dir).pull(b)
    assert pulled.updated_branch == "main" and b.head_commit() == c0
    tag = b.get_tag("v1")
    original = a.get_tag("v1")
    assert tag.commit_hash == c0
    assert tag.description == "first release"
    assert tag.metrics == {"accuracy": 0.91, "loss": 0.2}
    assert tag.tag_id == original.tag_id and b.store.has_blob(TAG, original.tag_id)
    assert b.resolve_ref("origin/experiment") == c1
    assert b.resolve_ref("origin/tags/v1") == c0
    assert_bit_exact(b, "origin/experiment", model(1))
    assert_bit_exact(b, "v1", model(0))

    # pushing only one branch and no tags
    a.tag_version("v2", ref="experiment")
    c2 = commit(a, model(2), "main moves")
    only = open_remote(remote_dir).push(a, branches=["main"], tags=False)
    assert set(only.refs) == {"heads/main"}
    assert "tags/v2" not in open_remote(remote_dir).list_refs()
    assert open_remote(remote_dir).list_refs()["heads/main"] == c2


def test_tracking_refs_resolve_after_fetch_and_follow_deletions(pair, remote_dir) -> None:
    a, b, c0 = pair
    assert b.resolve_ref("origin/main") == c0
    a.create_branch("side")
    open_remote(remote_dir).push(a)
    open_remote(remote_dir).fetch(b)
    assert b.resolve_ref("origin/side") == c0
    assert b.remote_refs.list("origin") == {"origin/main": c0, "origin/side": c0}
    assert open_remote(remote_dir).layout.delete_ref("heads/side")
    open_remote(remote_dir).fetch(b)
    assert b.remote_refs.list("origin") == {"origin/main": c0}
    with pytest.raises(Exception, match="origin/side"):
        b.resolve_ref("origin/side")


# -- refusing remotes that are not ours ---------------------------------------------------------
def test_folder_with_files_but_no_format_file_is_refused(make_repo, remote_dir) -> None:
    repo = make_repo("a")
    commit(repo, model(0), "base")
    remote_dir.mkdir()
    (remote_dir / "notes.txt").write_text("my holiday photos\n")
    for action in (lambda r: r.push(repo), lambda r: r.fetch(repo), lambda r: r.pull(repo)):
        with pytest.raises(RemoteFormatError, match="not a Coral remote"):
            action(open_remote(remote_dir))
    assert sorted(p.name for p in remote_dir.iterdir() if p.name != "tmp") == ["notes.txt"]


def test_remote_written_by_a_newer_coral_is_refused(pair, remote_dir) -> None:
    a, b, c0 = pair
    (remote_dir / FORMAT_KEY).write_text(
        json.dumps({"format": 99, "kind": "coral-remote", "default_branch": "main"})
    )
    commit(a, model(1), "more")
    before = local_refs(b)
    for action in (lambda r: r.push(a), lambda r: r.fetch(b), lambda r: r.pull(b)):
        with pytest.raises(RemoteFormatError, match="newer") as info:
            action(open_remote(remote_dir))
        assert "99" in str(info.value) and "upgrade" in (info.value.hint or "").lower()
    assert open_remote(remote_dir).layout.get_ref("heads/main").commit == c0
    assert local_refs(b) == before


def test_damaged_format_file_is_refused(pair, remote_dir) -> None:
    _, b, _ = pair
    (remote_dir / FORMAT_KEY).write_text("{not json")
    with pytest.raises(RemoteFormatError, match="damaged"):
        open_remote(remote_dir).fetch(b)


def test_fetch_from_an_empty_remote_is_a_clear_error(make_repo, remote_dir) -> None:
    repo = make_repo("a")
    with pytest.raises(RemoteError, match="no Coral repository"):
        open_remote(remote_dir).fetch(repo)


# -- verification of what arrives ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["chunk", "tensor", "tree", "commit"])
@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
def test_tampered_object_on_remote_is_refused(pair, remote_dir, kind, where) -> None:
    a, b, c0 = pair
    c1 = commit(a, model(1), "second")
    open_remote(remote_dir).push(a)
    new = _new_object(a, c0, c1, kind)
    flip_remote_byte(remote_dir, open_remote(remote_dir), new, where)
    before = local_refs(b)
    with pytest.raises((CorruptObjectError, RemoteError)):
        open_remote(remote_dir).pull(b)
    assert local_refs(b) == before
    assert b.head_commit() == c0 and b.resolve_ref("origin/main") == c0
    assert not b.store.has_blob(COMMIT, c1)
    assert_bit_exact(b, "HEAD", model(0))
    # a repository that has nothing yet gets nothing either
    fresh_dir = b.path.parent / "fresh"
    from coral.version_control.repository import Repository

    with Repository.init(fresh_dir) as fresh:
        with pytest.raises((CorruptObjectError, RemoteError)):
            open_remote(remote_dir).fetch(fresh)
        assert local_refs(fresh)["branches"] == {} and local_refs(fresh)["tracking"] == {}


def _new_object(repo, old: str, new: str, kind: str) -> str:
    """An object of `kind` that commit `new` brings and `old` does not have."""
    if kind == "commit":
        return new
    tree = repo.read_commit(new).tree_id
    if kind == "tree":
        return tree
    old_ids = {e.tensor_id for e in repo.get_tree(old).entries.values()}
    tensor = next(
        e.tensor_id
        for e in repo.read_tree(tree).entries.values()
        if e.tensor_id not in old_ids and e.name != "step"
    )
    if kind == "tensor":
        return tensor
    return repo.store.manifest(tensor).chunks[0]


def test_tampered_commit_is_reported_as_corrupt_not_as_missing_parent(pair, remote_dir) -> None:
    a, b, c0 = pair
    c1 = commit(a, model(1), "second")
    open_remote(remote_dir).push(a)
    remote = open_remote(remote_dir)
    loc = remote.layout.refresh_index()[c1]
    pack = remote_dir / "packs" / f"{loc.pack_id}.pack"
    data = bytearray(pack.read_bytes())
    at = data.index(c0.encode(), loc.offset, loc.offset + loc.length)  # the parent hash
    data[at] = ord("0") if data[at] != ord("0") else ord("1")  # still a well-formed hash
    pack.write_bytes(bytes(data))
    before = local_refs(b)
    with pytest.raises(CorruptObjectError) as info:
        open_remote(remote_dir).pull(b)
    assert c1 in str(info.value)
    assert local_refs(b) == before


@pytest.mark.parametrize("damage", ["truncated", "garbage-trailer", "garbage-file", "tiny"])
def test_damaged_pack_on_remote_is_a_clear_error(pair, remote_dir, damage) -> None:
    a, b, c0 = pair
    commit(a, model(1), "second")
    open_remote(remote_dir).push(a)
    newest = max(remote_pack_files(remote_dir), key=lambda p: p.stat().st_mtime_ns)
    data = newest.read_bytes()
    if damage == "truncated":
        newest.write_bytes(data[:-7])
    elif damage == "garbage-trailer":
        blob = bytearray(data)
        blob[-40] ^= 0xFF  # inside the index block, under its checksum
        newest.write_bytes(bytes(blob))
    elif damage == "garbage-file":
        junk = random.Random(4).randbytes(5000)
        (remote_dir / "packs" / ("ab" * 32 + ".pack")).write_bytes(junk)
    else:
        (remote_dir / "packs" / ("cd" * 32 + ".pack")).write_bytes(b"CRPK")
    before = local_refs(b)
    with pytest.raises(RemoteError, match="damaged pack") as info:
        open_remote(remote_dir).pull(b)
    assert "Traceback" not in str(info.value)
    assert local_refs(b) == before and b.head_commit() == c0


def test_moving_a_tag_needs_force(make_repo, remote_dir) -> None:
    a = make_repo("a")
    c0 = commit(a, model(0), "base")
    a.tag_version("v1")
    open_remote(remote_dir).push(a)
    commit(a, model(1), "later")
    a.delete_tag("v1")
    a.tag_version("v1")
    result = open_remote(remote_dir).push(a)
    assert open_remote(remote_dir).list_refs()["tags/v1"] == c0
    assert not result.success and "v1" in result.errors[0] and "--force" in result.errors[0]
    forced = open_remote(remote_dir).push(a, force=True)
    assert forced.success
    assert open_remote(remote_dir).list_refs()["tags/v1"] == a.get_tag("v1").commit_hash != c0


# -- interrupted pushes -------------------------------------------------------------------------
def test_push_that_failed_midway_is_completed_by_the_next(make_repo, remote_dir, monkeypatch):
    """A push whose trees-and-commits pack never landed leaves the ref alone; the next push
    uploads the rest and the remote reads back whole."""
    repo = make_repo("a")
    weights = model(3, n=4, shape=(128, 128))
    commit(repo, weights, "one")

    class LosesMetaPack(PackWriter):
        def finish(self):
            if any(e.kind == COMMIT for e in self.entries):
                self.abort()
                raise OSError("injected: connection lost")
            return super().finish()

    monkeypatch.setattr(transfer_module, "PackWriter", LosesMetaPack)
    with pytest.raises(OSError, match="injected"):
        open_remote(remote_dir).push(repo)
    monkeypatch.setattr(transfer_module, "PackWriter", PackWriter)
    assert open_remote(remote_dir).list_refs() == {}
    landed = len(open_remote(remote_dir).list_remote_weights())
    assert landed == len(weights)

    done = open_remote(remote_dir).push(repo)
    assert done.success and done.pushed_weights == 0 and done.pushed_commits == 1
    fresh = make_repo("fresh")
    assert open_remote(remote_dir).pull(fresh).success
    assert_bit_exact(fresh, "HEAD", weights)


def test_push_that_lost_a_chunk_pack_is_completed_by_the_next(make_repo, remote_dir, monkeypatch):
    repo = make_repo("a")
    weights = model(3, n=4, shape=(128, 128))
    commit(repo, weights, "one")

    class LosesChunkPacks(PackWriter):
        def finish(self):
            if any(e.kind == "chunk" for e in self.entries):
                self.abort()
                raise OSError("injected: connection lost")
            return super().finish()

    # packs of one record each, so that tensor manifests travel apart from their chunks
    monkeypatch.setattr(transfer_module, "PACK_TARGET", 1)
    monkeypatch.setattr(transfer_module, "PackWriter", LosesChunkPacks)
    with pytest.raises(OSError, match="injected"):
        open_remote(remote_dir).push(repo)
    monkeypatch.setattr(transfer_module, "PackWriter", PackWriter)

    done = open_remote(remote_dir).push(repo)
    assert done.success
    fresh = make_repo("fresh")
    assert open_remote(remote_dir).pull(fresh).success  # RemoteError: the remote lacks chunk …
    assert_bit_exact(fresh, "HEAD", weights)


# -- concurrency --------------------------------------------------------------------------------
@pytest.mark.parametrize("meet", ["start", "ref-update"])
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_pushes_to_one_branch_one_wins(pair, remote_dir, meet, round_) -> None:
    """Two pushers of different commits to `main` at once: one moves it, the other is told
    non-fast-forward; the remote reads back as the winner's history."""
    a, b, c0 = pair
    tips = {"a": commit(a, model(10 + round_), "a"), "b": commit(b, model(20 + round_), "b")}
    wanted = {"a": model(10 + round_), "b": model(20 + round_)}
    paths = {"a": a.path, "b": b.path}
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, object] = {}

    def pusher(who: str) -> None:
        from coral.version_control.repository import Repository

        with Repository(paths[who]) as repo:
            remote = open_remote(remote_dir)
            if meet == "ref-update":  # both have read the old ref and uploaded: race the CAS
                real = remote.layout.set_ref

                def set_ref(name, doc, expected):
                    barrier.wait()
                    return real(name, doc, expected)

                remote.layout.set_ref = set_ref
            else:
                barrier.wait()
            try:
                results[who] = remote.push(repo)
            except BaseException as exc:  # reported below
                results[who] = exc
                if meet == "ref-update":
                    barrier.abort()

    threads = [threading.Thread(target=pusher, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    for who, res in results.items():
        assert not isinstance(res, BaseException), (who, res)
    winners = [w for w, r in results.items() if r.success]
    losers = [w for w, r in results.items() if not r.success]
    assert len(winners) == 1 and len(losers) == 1, results
    win, lose = winners[0], losers[0]
    assert results[win].refs == {"heads/main": (c0, tips[win])}
    assert results[lose].refs == {}
    error = results[lose].errors[0]
    assert "rejected" in error and "main" in error and "pull" in error
    if meet == "ref-update":
        assert "another push moved it" in error
    assert open_remote(remote_dir).list_refs() == {"heads/main": tips[win]}

    from coral.version_control.repository import Repository

    with Repository.init(remote_dir.parent / f"check-{meet}-{round_}") as check:
        assert open_remote(remote_dir).pull(check).success
        assert check.head_commit() == tips[win]
        assert_bit_exact(check, "HEAD", wanted[win])
        assert_bit_exact(check, "HEAD~1", model(0))
        assert check.fsck().ok


def test_set_ref_is_compare_and_swap(pair, remote_dir) -> None:
    _, _, c0 = pair
    layout = open_remote(remote_dir).layout
    seen = layout.get_ref("heads/main")
    layout.set_ref("heads/main", {"commit": "1" * 64}, seen)
    with pytest.raises(NonFastForwardError, match="another push"):
        layout.set_ref("heads/main", {"commit": "2" * 64}, seen)  # stale etag
    with pytest.raises(NonFastForwardError):
        layout.set_ref("heads/main", {"commit": "3" * 64}, None)  # must not exist
    assert layout.get_ref("heads/main").commit == "1" * 64
    layout.set_ref("heads/new", {"commit": c0}, None)
    assert layout.get_ref("heads/new").commit == c0


# -- SIGKILL during push ------------------------------------------------------------------------
def _grow(repo, expected: dict[str, dict], commits: int = 4) -> str:
    """Commits of four fresh 512 KiB tensors each (about 8 MiB: one data pack per push)."""
    for _ in range(commits):
        w = model(100 + len(expected), n=4, shape=(128, 1024))
        expected[commit(repo, w, f"epoch {len(expected)}")] = w
    return repo.head_commit()


def _run_worker_and_kill(source: Path, url: str, delay: float | None) -> bool:
    """Start the push worker; SIGKILL it `delay` s after it is ready (None: right after its
    first uploaded pack). Returns whether it had reported a landed pack (or finished)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.remotes.push_worker", str(source), url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), (line, proc.stderr.read())
        landed = False
        if delay is None:
            landed = proc.stdout.readline().startswith(("PROGRESS", "DONE"))
        else:
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        return landed
    finally:
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_push_leaves_the_remote_consistent(make_repo, remote_dir, tmp_path):
    """SIGKILL a pushing process at random moments: the remote always reads back whole at its
    old or its new ref, and the push that finally completes uploads only what is missing."""
    source = make_repo("source")
    expected = {commit(source, model(0), "base"): model(0)}
    assert open_remote(remote_dir).push(source).success
    url = file_url(remote_dir)
    rng = random.Random(20240601)
    old = source.head_commit()
    new = _grow(source, expected)
    moved = 0
    for round_ in range(KILLS):
        last = round_ == KILLS - 1
        if last:  # what a whole push of the pending commits would upload, for the end
            shutil.copytree(remote_dir, tmp_path / "remote-before-last")
        landed = _run_worker_and_kill(source.path, url, None if last else rng.uniform(0, 0.1))
        if last:
            assert landed, "the worker never reported an uploaded pack"

        tip = open_remote(remote_dir).list_refs()["heads/main"]
        assert tip in (old, new), (round_, tip)
        check = make_repo(f"check{round_}")
        result = open_remote(remote_dir).pull(check)
        assert result.success, result.errors
        assert check.head_commit() == tip
        history = [c.commit_hash for c in check.log()]
        assert history[0] == tip and set(history) <= set(expected)
        for c in history:
            assert_bit_exact(check, c, expected[c])
        check.close()
        if tip == new and not last:  # that push got through: give the next kill new work
            moved += 1
            old, new = new, _grow(source, expected)

    final = open_remote(remote_dir).push(source)
    assert final.success, final.errors
    assert open_remote(remote_dir).list_refs() == {"heads/main": new}
    whole = open_remote(tmp_path / "remote-before-last").push(source)
    assert whole.success and whole.bytes_transferred > 4 * 4 * 512 * 1024 // 2
    assert final.bytes_transferred < whole.bytes_transferred
    check = make_repo("final-check")
    assert open_remote(remote_dir).pull(check).success
    for c, w in expected.items():
        assert_bit_exact(check, c, w)
    assert check.fsck().ok
    print(f"kills: {KILLS}, pushes that got through before their kill: {moved}")


def test_trees_and_commits_are_read_from_the_remote_index(pair, remote_dir) -> None:
    """A tree shared by two commits is uploaded once (the second push skips it)."""
    a, _, c0 = pair
    a.create_branch("copy")
    assert open_remote(remote_dir).push(a).pushed_objects == 0
    tree = a.read_commit(c0).tree_id
    index = open_remote(remote_dir).layout.refresh_index()
    assert index[tree].kind == TREE and index[c0].kind == COMMIT
