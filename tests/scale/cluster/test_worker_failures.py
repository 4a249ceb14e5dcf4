"""Workers that die while a commit's chunks encode on them (SIGKILL, landed mid-commit by the
progress callback the store calls as it takes each tensor): with one worker left the commit
completes, bit-exact; with none it fails cleanly — no commit, staged state as before, the
repository passes fsck and goes on working. Sizes: see conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from coral.porcelain.add import load_paths
from coral.porcelain.cluster import use_cluster
from coral.porcelain.save import save_paths
from coral.storage.cluster import ClusterError
from coral.version_control.repository import Repository
from tests.scale.cluster.conftest import TENSORS, Run, same_tensors
from tests.servers.dask import DaskCluster


def killing(after: int, kill: object) -> object:
    """A progress callback that runs `kill()` once, when the store takes tensor `after`."""
    seen = [0]

    def progress(n: int) -> None:
        seen[0] += n
        if seen[0] == after:
            kill()  # type: ignore[operator]

    return progress


def test_a_worker_killed_mid_commit_moves_its_chunks_to_the_other(
    fresh_cluster: DaskCluster, models: dict[str, Path], repo: Path, coral: Run
) -> None:
    victim = fresh_cluster.workers[0]
    with Repository(repo) as opened:
        assert use_cluster(opened, fresh_cluster.address).scheduler == fresh_cluster.address
        paths = [models["base"]]
        result = save_paths(
            opened,
            paths,
            "base",
            loaded=load_paths(paths),
            progress=killing(2, lambda: fresh_cluster.kill(victim)),  # type: ignore[arg-type]
        )
        assert opened.head_commit() == result.commit_hash
    assert victim.proc.poll() is not None and fresh_cluster.worker_count() == 1
    assert fresh_cluster.task_counts().get("encode_full", 0) >= 16 * TENSORS
    out = repo / "out.safetensors"
    assert coral("export", "HEAD", str(out)).exit_code == 0
    assert same_tensors(out, models["base"])
    assert coral("fsck").exit_code == 0


def test_all_workers_killed_mid_commit_fail_cleanly(
    fresh_cluster: DaskCluster, models: dict[str, Path], repo: Path, coral: Run
) -> None:
    assert coral("import", str(models["base"]), "--cluster", fresh_cluster.address).exit_code == 0
    assert coral("add", str(models["base"]), "--prefix", "staged.").exit_code == 0
    with Repository(repo) as opened:
        head, staged = opened.head_commit(), opened.staged_changes()
        use_cluster(opened, fresh_cluster.address)
        paths = [models["tuned"]]
        with pytest.raises(ClusterError, match="has no workers") as failed:
            save_paths(
                opened,
                paths,
                "tuned",
                loaded=load_paths(paths),
                progress=killing(2, fresh_cluster.kill_all),  # type: ignore[arg-type]
            )
        assert "dask worker" in (failed.value.hint or "")
        assert opened.head_commit() == head
        assert opened.staged_changes() == staged
    assert fresh_cluster.alive() == 0
    assert coral("fsck").exit_code == 0
    # the same command line with the workers gone: one error and a hint, nothing staged
    done = coral("add", str(models["tuned"]), "--cluster", fresh_cluster.address)
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert done.stderr.splitlines()[-2:] == [
        f"error: the Dask cluster at {fresh_cluster.address} has no workers (waited 3s)",
        f"hint: start some with `dask worker {fresh_cluster.address}`; nothing was recorded",
    ]
    with Repository(repo) as opened:
        assert opened.staged_changes() == staged
    fresh_cluster.add_worker()  # the cluster is back: the same commit goes through
    done = coral("save", str(models["tuned"]), "-m", "tuned", "--cluster", fresh_cluster.address)
    assert done.exit_code == 0, done.output
    out = repo / "out.safetensors"
    assert coral("export", "HEAD", str(out), "--layers", "layer*").exit_code == 0
    assert same_tensors(out, models["tuned"])
    assert coral("fsck").exit_code == 0
