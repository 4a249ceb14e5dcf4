"""CheckpointManager with a real torch training loop: bit-exact round trips, exact resume,
retention, asynchronous commits and their failures."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
import torch

from coral.errors import CoralError
from coral.integrations.pytorch import PyTorchIntegration, is_reserved_name
from coral.training import BackgroundCommitError, CheckpointConfig, CheckpointManager, TrainingState
from coral.training import manager as manager_module
from tests.training.torch_models import make_run, train_step

torch.use_deterministic_algorithms(True)


def _bits(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert _bits(a[k]) == _bits(b[k]), k
        elif isinstance(a[k], dict):
            _assert_same_state(a[k], b[k])
        elif isinstance(a[k], list):
            assert len(a[k]) == len(b[k])
            for x, y in zip(a[k], b[k], strict=True):
                if isinstance(x, dict):
                    _assert_same_state(x, y)
                else:
                    assert x == y
        else:
            assert a[k] == b[k], k


def _scramble_rng() -> None:
    torch.manual_seed(999)
    np.random.seed(999)
    random.seed(999)


def test_round_trip_is_bit_exact_with_ties_buffers_optimizer_and_scheduler(repo):
    model, opt, sched = make_run()
    for _ in range(5):
        train_step(model, opt, sched)
    integ = PyTorchIntegration(model, opt, sched)
    commit = integ.save(
        repo, "five steps", TrainingState.capture(step=5, epoch=0, metrics={"loss": 1.5})
    )

    names = repo.list_weights(commit)
    assert "head.weight" not in names and "embed.weight" in names  # tie stored once
    assert "norm.num_batches_tracked" in names and "norm.running_var" in names  # buffers
    assert any(n.startswith("__optim__/0/") for n in names)
    record = repo.get_commit(commit).metadata["training"]
    assert record["aliases"] == {"head.weight": "embed.weight"}
    assert record["step"] == 5 and record["epoch"] == 0
    assert repo.get_commit(commit).metadata["metrics"] == {"loss": 1.5}

    model2, opt2, sched2 = make_run(seed=1)
    state = PyTorchIntegration(model2, opt2, sched2).load(repo, commit)
    assert state.step == 5 and state.commit == commit
    _assert_same_state(model.state_dict(), model2.state_dict())
    assert model2.head.weight is model2.embed.weight  # the tie survives
    _assert_same_state(opt.state_dict(), opt2.state_dict())
    assert sched.state_dict() == sched2.state_dict()
    assert type(opt2.state_dict()["param_groups"][0]["betas"]) is tuple


def test_resume_continues_exactly_like_an_uninterrupted_run(repo):
    model, opt, sched = make_run()
    reference = [train_step(model, opt, sched) for _ in range(24)]

    model, opt, sched = make_run()
    cfg = CheckpointConfig(every_n_steps=10)
    with CheckpointManager(repo, model, opt, sched, cfg) as mgr:
        for step in range(1, 16):  # the run "crashes" after step 15; the last checkpoint is step 10
            assert train_step(model, opt, sched) == reference[step - 1]
            mgr.step(step, metrics={"loss": reference[step - 1]})

    _scramble_rng()
    model, opt, sched = make_run(seed=123)  # a new process would start from other weights
    mgr = CheckpointManager(repo, model, opt, sched, cfg)
    state = mgr.resume()
    assert state is not None and state.step == 10
    resumed = [train_step(model, opt, sched) for _ in range(10, 24)]
    assert resumed == reference[10:]  # exact: same data (RNG), weights, optimizer, scheduler
    mgr.close()


def test_fresh_run_resume_returns_none(repo):
    model, opt, sched = make_run()
    with CheckpointManager(repo, model, opt, sched) as mgr:
        assert mgr.resume() is None
        with pytest.raises(CoralError):
            mgr.load()


def test_retention_over_fifty_saves(repo):
    model, opt, sched = make_run()
    cfg = CheckpointConfig(
        every_n_steps=1,
        keep_last_n=3,
        keep_every_k=10,
        keep_best_n=2,
        best_metric="val",
        mode="min",
        save_optimizer=False,
    )
    vals = [abs(((s * 37) % 50) - 20) + 0.5 for s in range(1, 51)]  # bumpy metric
    with CheckpointManager(repo, model, opt, sched, cfg) as mgr:
        for step in range(1, 51):
            model.embed.weight.data[0, 0] = float(step)  # every checkpoint differs
            mgr.step(step, metrics={"val": vals[step - 1]})
        mgr.wait()
        kept = mgr.list_checkpoints()
        everything = mgr.list_checkpoints(include_pruned=True)

    assert len(everything) == 50
    steps = {c.step for c in kept}
    # every pruning decision was made with the checkpoints known at the time; the union of the
    # final rules must hold, and nothing else but earlier "best" ones may survive
    assert {48, 49, 50} <= steps
    assert {10, 20, 30, 40, 50} <= steps
    best_two = sorted(range(1, 51), key=lambda s: (vals[s - 1], s))[:2]
    assert set(best_two) <= steps
    assert steps == {48, 49, 50, 10, 20, 30, 40, *best_two}
    pruned = [c for c in everything if c.pruned]
    assert len(pruned) == 50 - len(steps)
    # pruned checkpoints are hidden, not gone: still loadable by hash, and can come back
    victim = pruned[0]
    w = repo.get_weight("embed.weight", victim.commit)
    assert w.data[0, 0] == float(victim.step)
    with CheckpointManager(repo, model, opt, sched, cfg) as mgr2:
        assert mgr2.unprune(victim.commit)
        assert victim.step in {c.step for c in mgr2.list_checkpoints()}
        assert mgr2.best().step == best_two[0]


def test_retention_then_gc_frees_pruned_checkpoints(repo):
    from coral.version_control.errors import PrunedCommitError

    model, opt, sched = make_run()
    cfg = CheckpointConfig(every_n_steps=1, keep_last_n=3, keep_every_k=10)
    states = {}
    with CheckpointManager(repo, model, opt, sched, cfg) as mgr:
        for step in range(1, 51):
            train_step(model, opt, sched)  # every tensor and the optimizer state change
            mgr.step(step, metrics={"loss": float(step)})
            states[step] = {k: v.clone() for k, v in model.state_dict().items()}
        mgr.wait()
        kept = mgr.list_checkpoints()
        pruned = [c for c in mgr.list_checkpoints(include_pruned=True) if c.pruned]
        rescued = pruned[-1]
        assert mgr.unprune(rescued.commit)  # unpruned before gc: survives it
    assert {c.step for c in kept} == {10, 20, 30, 40, 48, 49, 50}
    assert repo.pruned_commits() == {c.commit for c in pruned} - {rescued.commit}
    survivors = [*kept, rescued]
    before = {c.commit: repo.get_all_weights(c.commit) for c in survivors}

    result = repo.gc()
    assert result.freed_bytes > 0 and result.removed["tree"] == len(pruned) - 1
    assert len(repo.log()) == 50  # the history keeps every checkpoint commit
    assert repo.fsck().ok
    for c in survivors:
        after = repo.get_all_weights(c.commit)
        assert after.keys() == before[c.commit].keys()
        assert all(after[k].bit_equal(w) for k, w in before[c.commit].items())
    victim = pruned[0]
    with pytest.raises(PrunedCommitError, match="garbage-collected"):
        repo.get_all_weights(victim.commit)

    model2, opt2, sched2 = make_run(seed=1)
    with CheckpointManager(repo, model2, opt2, sched2, cfg) as mgr:
        for c in survivors:
            state = mgr.load(c.commit)
            assert state.step == c.step
            _assert_same_state(model2.state_dict(), states[c.step])
        with pytest.raises(PrunedCommitError):
            mgr.load(victim.commit)
        with pytest.raises(PrunedCommitError):
            mgr.unprune(victim.commit)  # too late: gc took its weights
        assert victim.step not in {c.step for c in mgr.list_checkpoints()}


def test_on_improvement_saves_only_improvements(repo):
    model, opt, sched = make_run()
    cfg = CheckpointConfig(on_improvement="val_loss", mode="min", async_commit=False)
    with CheckpointManager(repo, model, opt, sched, cfg) as mgr:
        saved = [
            mgr.report({"val_loss": v}, step=i)
            for i, v in enumerate([3.0, 2.0, 2.5, 1.0, 1.0, 4.0])
        ]
        assert saved == [True, True, False, True, False, False]
        assert [c.step for c in mgr.list_checkpoints()] == [0, 1, 3]
        assert mgr.best().metrics["val_loss"] == 1.0
    # a new manager on the same branch remembers the best value
    with CheckpointManager(repo, model, opt, sched, cfg) as mgr:
        assert not mgr.report({"val_loss": 1.5}, step=9)
        assert mgr.report({"val_loss": 0.5}, step=10)


def test_every_n_epochs(repo):
    model, opt, sched = make_run()
    cfg = CheckpointConfig(every_n_epochs=2, async_commit=False)
    with CheckpointManager(repo, model, opt, sched, cfg) as mgr:
        done = [mgr.epoch_end(e, step=(e + 1) * 10) for e in range(6)]
    assert done == [False, True, False, True, False, True]
    assert [(c.epoch, c.step) for c in mgr.list_checkpoints()] == [(1, 20), (3, 40), (5, 60)]


def test_async_save_returns_after_copy_and_snapshots_are_isolated(repo, monkeypatch):
    release = threading.Event()
    started = threading.Event()
    real = manager_module.commit_snapshot

    def slow_commit(*args, **kwargs):
        started.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(manager_module, "commit_snapshot", slow_commit)
    model, opt, sched = make_run()
    mgr = CheckpointManager(repo, model, opt, sched, CheckpointConfig(max_queue=1))
    before = model.embed.weight.detach().clone()
    assert mgr.save(step=1) is None  # queued, returns while the commit is blocked
    assert started.wait(30)
    with torch.no_grad():
        model.embed.weight.add_(1.0)  # training goes on and changes the weights in place
    assert mgr.pending == 1
    release.set()
    mgr.wait()
    committed = repo.get_weight("embed.weight", mgr.last_commit).data
    assert committed.tobytes() == before.numpy().tobytes()  # the copy taken at save time
    mgr.close()


def test_background_failure_surfaces_at_the_next_call(repo, monkeypatch):
    calls = {"n": 0}
    real = manager_module.commit_snapshot

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(manager_module, "commit_snapshot", flaky)
    model, opt, sched = make_run()
    mgr = CheckpointManager(repo, model, opt, sched, CheckpointConfig(every_n_steps=1))
    mgr.step(1)
    mgr.step(2)  # this commit fails in the background
    mgr._writer._queue.join()  # let it fail (test-only peek; users just keep training)
    with pytest.raises(BackgroundCommitError) as err:
        mgr.step(3)
    assert isinstance(err.value.__cause__, OSError)
    assert "step 2" in str(err.value)
    mgr.step(4)  # reported once; the run can go on
    mgr.wait()
    assert [c.step for c in mgr.list_checkpoints()] == [1, 4]
    # a failure of the last checkpoint is raised by close()
    calls["n"] = 1
    mgr.save(step=5)
    with pytest.raises(BackgroundCommitError):
        mgr.close()


def test_checkpoints_go_to_their_branch_and_leave_head_and_staging_alone(repo):
    repo.add_all_weights({"note": np.arange(3, dtype=np.float32)})
    base = repo.commit("base")
    repo.add_weight("staged.by.user", np.ones(2, dtype=np.float32))
    model, opt, sched = make_run()
    with CheckpointManager(
        repo, model, opt, sched, CheckpointConfig(every_n_steps=2), branch="run-1"
    ) as mgr:
        for step in range(1, 5):
            train_step(model, opt, sched)
            mgr.step(step)
    assert repo.current_branch == "main" and repo.head_commit() == base
    assert "staged.by.user" in repo.status().added
    log = repo.log(branch="run-1")
    assert [c.message for c in log] == ["checkpoint step 4", "checkpoint step 2", "base"]
    assert "note" not in repo.list_weights("run-1")  # a checkpoint is the whole run state


def test_model_weights_are_plain_names_and_reserved_prefixes_hold_state(repo):
    model, opt, sched = make_run()
    train_step(model, opt, sched)
    commit = PyTorchIntegration(model, opt, sched).save(repo)
    names = repo.list_weights(commit)
    model_names = [n for n in names if not is_reserved_name(n)]
    assert set(model_names) == set(model.state_dict()) - {"head.weight"}
    assert {n.split("/")[0] for n in names if is_reserved_name(n)} == {"__optim__", "__rng__"}


def test_strict_load_refuses_a_checkpoint_of_another_model(repo):
    model, opt, sched = make_run()
    commit = PyTorchIntegration(model, opt, sched).save(repo)
    other = torch.nn.Linear(3, 3)
    with pytest.raises(CoralError):
        PyTorchIntegration(other).load(repo, commit)
    w = other.weight.detach().clone()
    assert torch.equal(w, other.weight)  # nothing half-loaded
