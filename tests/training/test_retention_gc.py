"""Retention and gc: a checkpoint retention prunes stays loadable by its hash until `gc`
deletes its weights; `CheckpointConfig(auto_gc=True)` runs that gc right after pruning."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from coral.training import CheckpointConfig, CheckpointManager  # noqa: E402
from coral.training.config import CheckpointConfigError  # noqa: E402
from coral.version_control import pruning  # noqa: E402
from coral.version_control.errors import PrunedCommitError  # noqa: E402


def _run(repo, **config) -> tuple[CheckpointManager, list[str]]:
    model = torch.nn.Linear(32, 16)
    manager = CheckpointManager(
        repo, model, config=CheckpointConfig(every_n_steps=1, keep_last_n=1, **config)
    )
    for step in range(1, 4):
        with torch.no_grad():
            model.weight.add_(1.0)
        manager.save(step=step)
    manager.wait()
    commits = [i.commit for i in manager.list_checkpoints(include_pruned=True)]
    manager.close()
    return manager, commits


def test_without_auto_gc_a_pruned_checkpoint_loads_until_gc(repo) -> None:
    manager, commits = _run(repo, async_commit=False)
    assert [i.commit for i in manager.list_checkpoints()] == commits[-1:]
    for old in commits[:-1]:
        assert pruning.status(repo, old) == "pruned"
        assert repo.get_all_weights(old)  # loadable by its hash
    assert repo.gc(dry_run=True).freed_bytes > 0
    repo.gc()
    for old in commits[:-1]:
        assert pruning.status(repo, old) == "collected"
        with pytest.raises(PrunedCommitError):
            repo.get_all_weights(old)
    assert repo.get_all_weights(commits[-1])


@pytest.mark.parametrize("async_commit", [False, True])
def test_auto_gc_frees_pruned_weights_at_once(repo, async_commit: bool) -> None:
    _, commits = _run(repo, async_commit=async_commit, auto_gc=True)
    for old in commits[:-1]:
        assert pruning.status(repo, old) == "collected"
        with pytest.raises(PrunedCommitError):
            repo.get_all_weights(old)
    assert repo.gc(dry_run=True).removed == {}  # nothing left for a gc to take
    assert repo.get_all_weights(commits[-1])
    assert repo.fsck().ok


def test_auto_gc_is_off_by_default_and_checked() -> None:
    assert CheckpointConfig().auto_gc is False
    assert CheckpointConfig.from_dict({"auto_gc": True}).auto_gc is True
    with pytest.raises(CheckpointConfigError):
        CheckpointConfig(auto_gc="yes")  # type: ignore[arg-type]
