"""Merges: fast-forward, three-way resolution and every strategy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from coral.errors import MergeConflictError
from coral.version_control.errors import DirtyStagingError
from coral.version_control.merge import MergeResult
from coral.version_control.merge_strategies import InvalidMergeStrategyError
from coral.version_control.repository import Repository

from .conftest import commit_weights

BASE: dict[str, np.ndarray] = {
    "a": np.array([1.0, 2.0, 3.0, 4.0], np.float32),
    "b": np.array([0.0, 0.0], np.float32),
    "d": np.ones(3, np.float32),
    "step": np.array([10], np.int64),
}


def diverge(
    repo: Repository,
    ours: dict,
    theirs: dict,
    remove_ours: tuple[str, ...] = (),
    remove_theirs: tuple[str, ...] = (),
) -> tuple[str, str, str]:
    """base on main; `theirs` changes on branch `other`; `ours` changes on main."""
    base = commit_weights(repo, BASE, "base")
    repo.create_branch("other")
    repo.checkout("other")
    repo.add_all_weights(theirs)
    for n in remove_theirs:
        repo.remove_weight(n)
    t = repo.commit("theirs")
    repo.checkout("main")
    repo.add_all_weights(ours)
    for n in remove_ours:
        repo.remove_weight(n)
    o = repo.commit("ours")
    return base, o, t


def values(repo: Repository, name: str, ref: str = "HEAD") -> np.ndarray:
    return repo.get_weight(name, ref).data


def test_fast_forward_and_up_to_date(repo: Repository) -> None:
    c1 = commit_weights(repo, BASE, "c1")
    repo.create_branch("feat")
    repo.checkout("feat")
    c2 = commit_weights(repo, {"a": BASE["a"] + 1}, "c2")
    repo.checkout("main")
    result = repo.merge("feat")
    assert isinstance(result, MergeResult) and isinstance(result, str)
    assert result == c2 and result.fast_forward and not result.up_to_date
    assert repo.head_commit() == c2 and repo.current_branch == "main"
    again = repo.merge("feat")
    assert again.up_to_date and again == c2
    assert repo.merge(c1).up_to_date
    assert result.to_dict()["fast_forward"] is True


def test_no_ff_makes_merge_commit(repo: Repository) -> None:
    c1 = commit_weights(repo, BASE, "c1")
    repo.create_branch("feat")
    repo.checkout("feat")
    c2 = commit_weights(repo, {"a": BASE["a"] + 1}, "c2")
    repo.checkout("main")
    m = repo.merge("feat", no_ff=True)
    assert not m.fast_forward
    assert repo.get_commit(m).parents == [c1, c2]
    np.testing.assert_array_equal(values(repo, "a"), BASE["a"] + 1)


def test_non_conflicting_changes_from_both_sides(repo: Repository) -> None:
    _, o, t = diverge(
        repo,
        ours={"a": BASE["a"] * 2},
        theirs={"b": np.ones(2, np.float32), "c": np.zeros(5)},
        remove_ours=("d",),
    )
    m = repo.merge("other")  # default strategy: fail on conflict — there is none
    commit = repo.get_commit(m)
    assert commit.parents == [o, t] and commit.is_merge
    assert commit.metadata["merge"]["conflicts"] == []
    np.testing.assert_array_equal(values(repo, "a"), BASE["a"] * 2)
    np.testing.assert_array_equal(values(repo, "b"), np.ones(2, np.float32))
    assert set(repo.list_weights()) == {"a", "b", "c", "step"}
    assert repo.resolve_ref("HEAD^2") == t and repo.resolve_ref("HEAD^1") == o
    assert "Merge other into main" in commit.message


def test_same_change_on_both_sides_is_no_conflict(repo: Repository) -> None:
    diverge(repo, ours={"a": BASE["a"] + 5}, theirs={"a": BASE["a"] + 5})
    m = repo.merge("other")
    assert m.conflicts == []


def test_conflict_fails_and_changes_nothing(repo: Repository) -> None:
    _, o, _ = diverge(
        repo,
        ours={"a": BASE["a"] + 1, "b": np.ones(2, np.float32)},
        theirs={"a": BASE["a"] - 1, "b": np.full(2, 3, np.float32)},
    )
    with pytest.raises(MergeConflictError) as info:
        repo.merge("other", strategy="fail")
    assert "a, b" in str(info.value) and "2 tensor" in str(info.value)
    assert repo.head_commit() == o and repo.status().is_clean
    with pytest.raises(MergeConflictError):
        repo.merge("other", strategy="fail-on-conflict")


def test_ours_and_theirs(repo: Repository) -> None:
    diverge(
        repo, ours={"a": BASE["a"] + 1}, theirs={"a": BASE["a"] - 1, "b": np.ones(2, np.float32)}
    )
    m = repo.merge("other", strategy="ours")
    assert m.conflicts == ["a"] and m.resolutions == {"a": "ours"}
    np.testing.assert_array_equal(values(repo, "a"), BASE["a"] + 1)
    np.testing.assert_array_equal(
        values(repo, "b"), np.ones(2, np.float32)
    )  # non-conflicting: taken
    repo.checkout("HEAD^1")  # back to ours, detached, and merge again with theirs
    m2 = repo.merge("other", strategy="theirs")
    np.testing.assert_array_equal(values(repo, "a", m2), BASE["a"] - 1)
    assert repo.status().detached and repo.head_commit() == m2


def test_average_in_float64_then_cast(repo: Repository) -> None:
    ours = np.array([1.0, 2.0, 3.0, 1e-8], np.float32)
    theirs = np.array([2.0, 2.5, -3.0, 3e-8], np.float32)
    diverge(repo, ours={"a": ours}, theirs={"a": theirs})
    m = repo.merge("other", strategy="average")
    expected = ((ours.astype(np.float64) + theirs.astype(np.float64)) / 2).astype(np.float32)
    np.testing.assert_array_equal(values(repo, "a"), expected)
    assert m.resolutions == {"a": "average"}
    assert repo.get_commit(m).metadata["merge"]["strategy"] == "average"


def test_weighted(repo: Repository) -> None:
    ours, theirs = BASE["a"] + 4, BASE["a"] - 4
    diverge(repo, ours={"a": ours}, theirs={"a": theirs})
    with pytest.raises(InvalidMergeStrategyError):
        repo.merge("other", strategy="weighted")
    with pytest.raises(InvalidMergeStrategyError):
        repo.merge("other", strategy="weighted", weights=(1.0,))
    repo.merge("other", strategy="weighted", weights=(0.25, 0.75))
    expected = (0.25 * ours.astype(np.float64) + 0.75 * theirs.astype(np.float64)).astype(
        np.float32
    )
    np.testing.assert_array_equal(values(repo, "a"), expected)
    params = repo.get_commit().metadata["merge"]["params"]
    assert params == {"weights": [0.25, 0.75]}


def test_integer_and_bool_keep_ours(repo: Repository) -> None:
    diverge(
        repo,
        ours={"step": np.array([20]), "a": BASE["a"] * 3},
        theirs={"step": np.array([30]), "a": BASE["a"] * 5},
    )
    m = repo.merge("other", strategy="average")
    assert values(repo, "step").tolist() == [20]
    assert m.resolutions["step"].startswith("ours") and "int64" in m.resolutions["step"]
    np.testing.assert_array_equal(values(repo, "a"), BASE["a"] * 4)


def test_delete_vs_modify_keeps_ours(repo: Repository) -> None:
    diverge(repo, ours={"a": BASE["a"] + 1}, theirs={}, remove_theirs=("a",))
    m = repo.merge("other", strategy="average")
    assert m.resolutions["a"] == "ours (deleted on one side)"
    np.testing.assert_array_equal(values(repo, "a"), BASE["a"] + 1)


def test_bfloat16_average(repo: Repository) -> None:
    bf = ml_dtypes.bfloat16
    base = {"w": np.array([1.0, 2.0, 3.0], dtype=bf)}
    commit_weights(repo, base, "base")
    repo.create_branch("other")
    o_vals = np.array([1.5, 2.0, 4.0], dtype=bf)
    t_vals = np.array([1.0, 3.0, 5.0], dtype=bf)
    commit_weights(repo, {"w": o_vals}, "ours")
    repo.checkout("other")
    commit_weights(repo, {"w": t_vals}, "theirs")
    repo.checkout("main")
    repo.merge("other", strategy="average")
    got = values(repo, "w")
    assert got.dtype == np.dtype(bf)
    assert got.astype(np.float32).tolist() == [1.25, 2.5, 4.5]


def test_uniform_soup_of_several_branches(repo: Repository) -> None:
    commit_weights(repo, BASE, "base")
    vals = {}
    for i, name in enumerate(["ft1", "ft2", "ft3"]):
        repo.create_branch(name, from_ref="main")
        repo.checkout(name)
        vals[name] = BASE["a"] * (i + 2)
        commit_weights(repo, {"a": vals[name]}, name)
    repo.checkout("ft1")
    tips = [repo.resolve_ref(n) for n in ("ft1", "ft2", "ft3")]
    m = repo.merge(["ft2", "ft3"], strategy="uniform_soup")
    assert repo.get_commit(m).parents == tips
    expected = np.mean(np.stack([vals[n].astype(np.float64) for n in vals]), axis=0).astype(
        np.float32
    )
    np.testing.assert_array_equal(values(repo, "a"), expected)
    assert repo.merge("ft2", strategy="soup").up_to_date


def test_greedy_soup(repo: Repository) -> None:
    target = BASE["a"] + 1
    diverge(repo, ours={"a": target + 0.1}, theirs={"a": target - 0.1})
    calls: list[np.ndarray] = []

    def evaluate(weights: dict) -> float:
        a = weights["a"].data.astype(np.float64)
        calls.append(a)
        return -float(np.abs(a - target).sum())

    with pytest.raises(InvalidMergeStrategyError):
        repo.merge("other", strategy="greedy_soup")
    m = repo.merge("other", strategy="greedy_soup", evaluate=evaluate)
    np.testing.assert_allclose(values(repo, "a"), target, atol=1e-6)  # the mean is best: both kept
    info = m.details["greedy_soup"]
    assert info["kept"] == [0, 1] and len(calls) == 3
    assert repo.get_commit(m).metadata["merge"]["params"] == {"evaluate": "evaluate"}


def test_greedy_soup_rejects_harmful_ingredient(repo: Repository) -> None:
    target = BASE["a"] + 1
    diverge(repo, ours={"a": target}, theirs={"a": target + 100})

    def evaluate(weights: dict) -> float:
        return -float(np.abs(weights["a"].data - target).sum())

    m = repo.merge("other", strategy="greedy_soup", evaluate=evaluate)
    assert m.details["greedy_soup"]["kept"] == [0]
    np.testing.assert_array_equal(values(repo, "a"), target)


def test_ties(repo: Repository) -> None:
    base_a = BASE["a"].astype(np.float64)
    tv1 = np.array([1.0, -2.0, 3.0, 0.1])
    tv2 = np.array([2.0, 1.0, -1.5, 0.2])
    diverge(
        repo,
        ours={"a": (base_a + tv1).astype(np.float32)},
        theirs={"a": (base_a + tv2).astype(np.float32)},
    )
    m = repo.merge("other", strategy="ties", density=0.5)
    # top-50%: tv1 -> [0,-2,3,0], tv2 -> [2,0,-1.5,0]; signs [+,-,+,0]; disjoint means:
    np.testing.assert_allclose(
        values(repo, "a"), base_a + np.array([2.0, -2.0, 3.0, 0.0]), rtol=1e-6
    )
    assert m.resolutions == {"a": "ties"}


def test_ties_without_trimming(repo: Repository) -> None:
    base_a = BASE["a"].astype(np.float64)
    tv1 = np.array([1.0, -2.0, 3.0, 0.125])
    tv2 = np.array([2.0, 1.0, -1.0, 0.25])
    diverge(
        repo,
        ours={"a": (base_a + tv1).astype(np.float32)},
        theirs={"a": (base_a + tv2).astype(np.float32)},
    )
    repo.merge("other", strategy="ties", k=100)
    np.testing.assert_allclose(
        values(repo, "a"), base_a + np.array([1.5, -2.0, 3.0, 0.1875]), rtol=1e-6
    )


def test_dare_ties_is_seeded(repo: Repository) -> None:
    rng = np.random.default_rng(5)
    base = {"w": rng.standard_normal(4096).astype(np.float32)}
    commit_weights(repo, base, "base")
    repo.create_branch("other")
    commit_weights(
        repo, {"w": base["w"] + rng.standard_normal(4096).astype(np.float32) * 0.1}, "ours"
    )
    ours = repo.head_commit()
    repo.checkout("other")
    commit_weights(
        repo, {"w": base["w"] + rng.standard_normal(4096).astype(np.float32) * 0.1}, "theirs"
    )
    repo.checkout("main")
    results = []
    for seed in (1, 1, 2):
        m = repo.merge("other", strategy="dare-ties", drop_rate=0.5, seed=seed)
        results.append(values(repo, "w", m).copy())
        repo.database.connection().execute(
            "UPDATE branches SET commit_id=? WHERE name='main'", (ours,)
        )
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])
    tv = results[0].astype(np.float64) - base["w"]
    assert 0 < np.count_nonzero(np.abs(tv) < 1e-12) < 4096  # some entries dropped on both sides


def test_dare_without_drop_equals_ties_without_trim(repo: Repository) -> None:
    diverge(
        repo,
        ours={"a": BASE["a"] + np.array([1, -2, 3, 0.5], np.float32)},
        theirs={"a": BASE["a"] + np.array([2, 1, -1, 0.25], np.float32)},
    )
    ours = repo.head_commit()
    a = repo.merge("other", strategy="dare_ties", drop_rate=0.0)
    repo.database.connection().execute("UPDATE branches SET commit_id=? WHERE name='main'", (ours,))
    b = repo.merge("other", strategy="ties", density=1.0)
    np.testing.assert_array_equal(values(repo, "a", a), values(repo, "a", b))


def test_merge_refuses_dirty_staging_and_unknown_strategy(repo: Repository) -> None:
    diverge(repo, ours={"a": BASE["a"] + 1}, theirs={"a": BASE["a"] - 1})
    with pytest.raises(InvalidMergeStrategyError) as info:
        repo.merge("other", strategy="magic")
    assert "ties" in (info.value.hint or "")
    repo.add_weight("x", np.ones(1))
    with pytest.raises(DirtyStagingError):
        repo.merge("other", strategy="ours")


def test_merge_base(repo: Repository) -> None:
    base, o, t = diverge(repo, ours={"a": BASE["a"] + 1}, theirs={"b": np.ones(2, np.float32)})
    assert repo.merge_base("main", "other") == base
    assert repo.is_ancestor(base, "other") and not repo.is_ancestor(o, t)
