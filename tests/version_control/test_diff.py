"""The one diff engine (`coral.version_control.diff`): categories by bit equality, metrics that
tell tiny changes apart, progress, and the `DiffResult` view of it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from coral.version_control.diff import (
    CATEGORIES,
    TensorSide,
    compare_tensors,
    diff_result,
)


def side(arr: np.ndarray, content_id: str | None = None) -> TensorSide:
    return TensorSide(tuple(arr.shape), arr.dtype.name, lambda: arr, content_id)


def never_read(shape: tuple[int, ...], content_id: str) -> TensorSide:
    def load() -> np.ndarray:
        raise AssertionError("an equal content id must be enough")

    return TensorSide(shape, "float32", load, content_id)


def verdicts(a: dict[str, TensorSide], b: dict[str, TensorSide]) -> dict[str, str]:
    return {t.name: t.category for t in compare_tensors(a, b)}


def test_categories_are_decided_by_bits() -> None:
    x = np.array([0.0, 1.0, np.nan], np.float32)
    neg_zero = np.array([-0.0, 1.0, np.nan], np.float32)  # equal values, different bits
    one_ulp = x.copy()
    one_ulp[1] = np.nextafter(np.float32(1.0), np.float32(2.0))
    a = {
        "same": side(x),
        "signed": side(x),
        "ulp": side(x),
        "cast": side(x),
        "shape": side(x),
        "gone": side(x),
    }
    b = {
        "same": side(x.copy()),
        "signed": side(neg_zero),
        "ulp": side(one_ulp),
        "cast": side(x.astype(np.float64)),
        "shape": side(np.zeros(4, np.float32)),
        "new": side(x),
    }
    assert verdicts(a, b) == {
        "cast": "changed",
        "gone": "removed",
        "new": "added",
        "same": "identical",
        "shape": "shape_changed",
        "signed": "changed",
        "ulp": "changed",
    }


def test_equal_content_ids_are_not_read() -> None:
    a = {"w": never_read((3,), "id-1")}
    b = {"w": never_read((3,), "id-1")}
    assert verdicts(a, b) == {"w": "identical"}


def test_a_tensor_with_383_of_384_elements_changed_is_changed() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(384).astype(np.float32)
    b = a.copy()
    b[1:] = np.nextafter(b[1:], np.float32(np.inf))
    (t,) = compare_tensors({"bias": side(a)}, {"bias": side(b)})
    assert t.category == "changed" and t.metrics is not None
    assert t.metrics.changed_elements == 383
    # 1 - cos is tiny but not zero: it tells this tensor from an identical one.
    assert 0.0 < t.metrics.one_minus_cosine < 1e-12


def test_one_minus_cosine_is_precise_for_small_changes() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal(10_000)
    for scale in (1e-3, 1e-5, 1e-7):
        b = a + scale * rng.standard_normal(a.shape)
        (t,) = compare_tensors({"w": side(a)}, {"w": side(b)})
        assert t.metrics is not None
        exact = 1.0 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
        # the naive 1 - cos has cancellation error ~1e-16; the engine keeps relative precision
        assert t.metrics.one_minus_cosine == pytest.approx(exact, rel=1e-3, abs=1e-15)
        assert t.metrics.one_minus_cosine > 0


def test_natural_order_and_progress() -> None:
    names = [f"layer.{i}.weight" for i in (10, 2, 1)]
    a = {n: side(np.ones(2, np.float32)) for n in names}
    seen: list[tuple[str, int, int | None]] = []
    report: Callable[[str, int, int | None], None] = lambda *args: seen.append(args)  # noqa: E731
    tensors = compare_tensors(a, dict(a), progress=report)
    assert [t.name for t in tensors] == ["layer.1.weight", "layer.2.weight", "layer.10.weight"]
    assert seen == [("comparing tensors", i, 3) for i in (1, 2, 3)]


def test_diff_result_counts_cover_every_name_once() -> None:
    x = np.arange(4, dtype=np.float32)
    tensors = compare_tensors(
        {"a": side(x), "b": side(x), "c": side(x)},
        {"a": side(x + 1), "b": side(x), "d": side(x)},
    )
    result = diff_result(tensors, "A", "B")
    counts = result.counts()
    assert set(counts) == set(CATEGORIES) and sum(counts.values()) == 4
    assert counts == {"identical": 1, "changed": 1, "shape_changed": 0, "added": 1, "removed": 1}
    assert result.summary()["changed"] == 1 and result.changed["a"].l2 == pytest.approx(2.0)
    assert result.to_dict()["categories"] == counts
