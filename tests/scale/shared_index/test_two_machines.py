"""Two repositories ("machines": every command a separate `coral` process) share delta bases
through a real redis-server, with a `file://` remote between them.

Sizes: CORAL_TEST_SHARED_INDEX_DIM (default 256) is the side of the square tensors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coral.version_control.repository import Repository
from tests.servers.process import free_port

from .conftest import base_model, fine_tune, save, stored_bytes

pytestmark = pytest.mark.server
REPO_ROOT = Path(__file__).resolve().parents[3]


def coral(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "CORAL_AUTHOR": "test <t@example.com>"}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-m", "coral.cli.main", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def machine(root: Path, name: str, remote: Path, backend: str, namespace: str) -> Path:
    """A repository with the shared index (or the local one) and `origin` = `remote`."""
    repo = root / name
    coral("init", repo, cwd=root)
    coral("-C", repo, "config", "set", "similarity.backend", backend, cwd=root)
    coral("-C", repo, "config", "set", "similarity.namespace", namespace, cwd=root)
    coral("-C", repo, "remote", "add", "origin", remote.as_uri(), cwd=root)
    return repo


def commit_file(repo: Path, checkpoint: Path, message: str) -> subprocess.CompletedProcess[str]:
    coral("-C", repo, "add", checkpoint, cwd=repo.parent)
    return coral("-C", repo, "commit", "-m", message, cwd=repo.parent)


def assert_bit_exact(repo: Path, tensors: dict[str, np.ndarray]) -> None:
    with Repository(repo) as r:
        got = r.get_all_weights()
    assert sorted(got) == sorted(tensors)
    for name, value in tensors.items():
        assert got[name].data.dtype == value.dtype
        assert got[name].data.tobytes() == value.tobytes(), name


def test_fine_tunes_on_two_machines_find_each_others_bases(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    base = base_model()
    tuned_b = fine_tune(base, 1, "ft1.")
    tuned_a = fine_tune(tuned_b, 2, "ft2.")  # a fine-tune of machine B's fine-tune
    files = {
        n: save(tmp_path / f"{n}.safetensors", t)
        for n, t in (("base", base), ("tuned_b", tuned_b), ("tuned_a", tuned_a))
    }

    a = machine(tmp_path, "a", remote, redis_url, namespace)
    commit_file(a, files["base"], "base")
    coral("-C", a, "push", "origin", "main", cwd=tmp_path)

    b = machine(tmp_path, "b", remote, redis_url, namespace)
    alone = machine(tmp_path, "alone", remote, "local", namespace)  # the same, unshared
    for repo in (b, alone):
        coral("-C", repo, "fetch", "origin", cwd=tmp_path)
        before = stored_bytes(repo)
        commit_file(repo, files["tuned_b"], "fine-tune")
        repo_growth = stored_bytes(repo) - before
        if repo == b:
            shared_growth = repo_growth
        else:
            local_growth = repo_growth
    # B's fine-tune has no same-named tensor in its parent; only Redis knew of A's base
    assert shared_growth < 0.5 * local_growth, (shared_growth, local_growth)
    assert_bit_exact(b, tuned_b)
    coral("-C", b, "fsck", cwd=tmp_path)

    # and back: B publishes its fine-tune, A fine-tunes it further and finds B's tensors
    coral("-C", b, "branch", "tuned", cwd=tmp_path)
    coral("-C", b, "push", "origin", "tuned", cwd=tmp_path)
    coral("-C", a, "fetch", "origin", cwd=tmp_path)
    before = stored_bytes(a)
    commit_file(a, files["tuned_a"], "fine-tune of the fine-tune")
    assert stored_bytes(a) - before < 0.5 * local_growth
    assert_bit_exact(a, {**base, **tuned_a})  # added onto the base commit
    coral("-C", a, "fsck", cwd=tmp_path)


def test_a_base_missing_here_is_skipped(tmp_path: Path, redis_url: str, namespace: str) -> None:
    """Redis knows a similar tensor, but this store lacks it: stored without that base."""
    remote = tmp_path / "remote"
    remote.mkdir()
    base = base_model()
    tuned = fine_tune(base, 3, "ft.")
    a = machine(tmp_path, "a", remote, redis_url, namespace)
    commit_file(a, save(tmp_path / "base.safetensors", base), "base")
    lonely = machine(tmp_path, "lonely", remote, redis_url, namespace)  # never fetches
    done = commit_file(lonely, save(tmp_path / "tuned.safetensors", tuned), "fine-tune")
    assert "warning" not in done.stderr
    assert_bit_exact(lonely, tuned)
    coral("-C", lonely, "fsck", cwd=tmp_path)


def test_redis_down_commits_with_one_warning(tmp_path: Path, namespace: str) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    remote = tmp_path / "remote"
    remote.mkdir()
    repo = machine(tmp_path, "repo", remote, down, namespace)
    tensors = fine_tune(base_model(), 4, "")
    checkpoint = save(tmp_path / "model.safetensors", tensors)
    added = coral("-C", repo, "add", checkpoint, cwd=tmp_path)
    warnings = [line for line in added.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: shared index {down} unreachable; local bases only"], added.stderr
    assert all(len(line) <= 80 for line in added.stderr.splitlines())
    coral("-C", repo, "commit", "-m", "offline", cwd=tmp_path)
    assert_bit_exact(repo, tensors)


def test_an_existing_history_is_published_when_the_backend_is_enabled(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    """A repository that committed before sharing files its old fingerprints at its next add."""
    remote = tmp_path / "remote"
    remote.mkdir()
    base = base_model()
    old = machine(tmp_path, "old", remote, "local", namespace)
    commit_file(old, save(tmp_path / "base.safetensors", base), "base, before sharing")
    coral("-C", old, "push", "origin", "main", cwd=tmp_path)
    coral("-C", old, "config", "set", "similarity.backend", redis_url, cwd=tmp_path)
    extra = {"probe.weight": np.arange(64, dtype=np.float32)}
    commit_file(old, save(tmp_path / "extra.safetensors", extra), "first add with sharing")

    new = machine(tmp_path, "new", remote, redis_url, namespace)
    coral("-C", new, "fetch", "origin", cwd=tmp_path)
    tuned = fine_tune(base, 5, "ft.")
    before = stored_bytes(new)
    commit_file(new, save(tmp_path / "tuned.safetensors", tuned), "fine-tune")
    full = sum(v.nbytes for v in tuned.values())
    assert stored_bytes(new) - before < 0.5 * full
    assert_bit_exact(new, tuned)
