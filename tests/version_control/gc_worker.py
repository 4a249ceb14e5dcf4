"""Builds a repository history and garbage-collects it, forever.

Each round commits on `main`, commits on a new side branch, returns to `main`, deletes an
older side branch (and expires the reflog) or tags `main`, and runs `gc`. After every commit
returns it prints `COMMIT <hash> <seed>`; `model_for(seed)` rebuilds that commit's weights
and the commit's metadata records the seed. Run by tests/storage/test_crash_repack.py, which
kills it with SIGKILL at random moments:

    python -m tests.version_control.gc_worker REPO RUN
"""

from __future__ import annotations

import sys

import numpy as np

ROUNDS = 400  # rounds per run (a run is killed long before)


def seed_for(run: int, round_: int, side: bool) -> int:
    return run * 1000 + 2 * round_ + (1 if side else 0)


def on_main(seed: int) -> bool:
    """Whether the commit of `seed` was made on main (else on a side branch)."""
    return seed % 2 == 0


def model_for(seed: int) -> dict[str, np.ndarray]:
    """A 4-tensor model: fixed base values plus a sparse update that depends on the seed."""
    base = np.random.default_rng(5)
    weights: dict[str, np.ndarray] = {
        "enc.weight": (base.standard_normal((64, 96)) * 0.05).astype(np.float32),
        "enc.bias": np.zeros(96, np.float32),
        "emb": (base.standard_normal(3000) * 0.05).astype(np.float16),
        "step": np.array([seed], np.int64),
    }
    upd = np.random.default_rng([seed])
    for name in ("enc.weight", "enc.bias", "emb"):
        flat = weights[name].reshape(-1)
        flat[upd.integers(0, flat.size, max(1, flat.size // 200))] += flat.dtype.type(1e-3)
    weights["enc.bias"][0] = seed
    return weights


def run(repo_path: str, run_index: int) -> None:
    from coral.version_control.repository import Repository

    repo = Repository(repo_path)
    if repo.refs.branch_tip("main") is not None:
        # a kill may have left HEAD on a side branch with changes staged: start over on main
        repo.checkout("main", force=True)
    kept: list[str] = []
    for round_ in range(ROUNDS):
        seed = seed_for(run_index, round_, side=False)
        repo.add_all_weights(model_for(seed))
        h = repo.commit(f"main {seed}", metadata={"seed": seed})
        print(f"COMMIT {h} {seed}", flush=True)

        branch = f"side-{run_index}-{round_}"
        repo.create_branch(branch)
        repo.checkout(branch)
        seed = seed_for(run_index, round_, side=True)
        repo.add_all_weights(model_for(seed))
        h = repo.commit(f"side {seed}", metadata={"seed": seed})
        print(f"COMMIT {h} {seed}", flush=True)
        repo.checkout("main")
        kept.append(branch)

        if round_ % 3 == 2:
            repo.tag_version(f"t-{run_index}-{round_}", "a tag")
        if len(kept) > 2:  # garbage: the oldest side branch goes, and the reflog with it
            repo.delete_branch(kept.pop(0), force=True)
            repo.expire_reflog()
        repo.gc()
    repo.close()


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]))
