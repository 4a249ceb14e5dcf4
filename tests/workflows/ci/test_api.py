"""The porcelain under `coral ci`: schemas, validation (streamed), results, report, workflow."""

from __future__ import annotations

import sqlite3
import tracemalloc
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import yaml

from coral.porcelain.ci import (
    CIResults,
    ValidationSchema,
    benchmark_commit,
    ci_report,
    load_schema,
    validate_commit,
    validate_files,
    write_github_workflow,
)
from coral.porcelain.ci.schema import SchemaError, parse_schema
from coral.porcelain.ci.validate import scan_values
from coral.version_control.repository import Repository
from tests.workflows.ci.conftest import write_files


def test_parse_schema_defaults_and_patterns() -> None:
    s = parse_schema(
        {
            "tensors": {"a.weight": {"shape": [2, "*"]}, "*.bias": {"dtype": "float32"}},
            "drift": {"a.*": 0.1, "*": 1},
        }
    )
    exact, glob = s.tensors
    assert exact.required and not glob.required  # names are required, patterns are not
    assert exact.shape_ok((2, 7)) and not exact.shape_ok((3, 7)) and not exact.shape_ok((2,))
    assert s.drift_limit("a.weight") == ("a.*", 0.1) and s.drift_limit("b") == ("*", 1.0)
    assert ValidationSchema().reads_values
    assert not parse_schema({"allow_nan": True, "allow_inf": True}).reads_values


def test_schema_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="unknown key 'shapes'") as info:
        parse_schema({"tensors": {"a": {"shapes": [1]}}})
    assert "shape, dtype, required, max_abs" in (info.value.hint or "")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tensors: [1, 2\n")
    with pytest.raises(SchemaError, match="cannot read"):
        load_schema(bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1]")
    with pytest.raises(SchemaError, match="table of settings"):
        load_schema(listed)


def test_scan_values_every_kind() -> None:
    assert scan_values(np.array([1, -5, np.nan, np.inf, -np.inf], np.float32)) == (
        scan_values(np.array([1, -5, np.nan, np.inf, -np.inf], np.float64))
    )
    s = scan_values(np.array([1, -5, np.nan, np.inf, -np.inf], np.float32))
    assert (s.nan, s.inf, s.max_abs) == (1, 2, 5.0)
    b = scan_values(np.array([1, -3, np.nan], ml_dtypes.bfloat16))
    assert (b.nan, b.inf, b.max_abs) == (1, 0, 3.0)
    i = scan_values(np.array([-128, 5], np.int8))
    assert (i.nan, i.inf, i.max_abs) == (0, 0, 128.0)
    assert scan_values(np.zeros((0, 3), np.float32)).max_abs is None
    assert scan_values(np.array([np.nan], np.float32)).max_abs is None


def test_validate_streams_tensor_by_tensor(tmp_path: Path) -> None:
    """48 tensors of 1 MiB: validating with a drift base holds one pair at a time (and the
    diff engine's float64 work on it), never the whole model."""
    rng = np.random.default_rng(1)
    tensors = {f"layer.{i}": rng.standard_normal(1 << 18).astype(np.float32) for i in range(48)}
    total = sum(a.nbytes for a in tensors.values())
    with Repository.init(tmp_path / "big") as repo:
        repo.add_all_weights(tensors)
        repo.commit("one")
        repo.add_all_weights({k: v + np.float32(1) for k, v in tensors.items()})
        repo.commit("two")
        del tensors
        repo.store.wait_for_maintenance()
        tracemalloc.start()
        try:
            result = validate_commit(repo, "HEAD", base="HEAD~1")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert result.ok and len(result.drift) == 48
    assert all(d.relative is not None and d.relative > 0 for d in result.drift)
    assert peak < total / 3, (peak, total)


def test_validate_files_api(tmp_path: Path) -> None:
    files = write_files(tmp_path)
    result = validate_files([files["base"], files["broken"]])
    assert not result.ok and result.tensors == 6
    assert {v.check for v in result.violations} == {"nan", "inf"}
    sizes = validate_files([files["base"]], max_bytes=100, size_only=True)
    assert [v.check for v in sizes.violations] == ["file_bytes"] and sizes.tensors == 0


def test_results_component(tmp_path: Path) -> None:
    with Repository.init(tmp_path / "r") as repo:
        repo.add_all_weights({"w": np.ones(3, np.float32)})
        commit = repo.commit("one")
        results = CIResults(repo.database)
        assert results.latest(commit, "eval") is None  # no table yet: nothing recorded
        first = results.record(commit, "eval", {"metrics": {"acc": 0.5}}, actor="ana")
        second = results.record(commit, "eval", {"metrics": {"acc": float("nan")}}, actor="bo")
        assert second > first
        latest = results.latest(commit, "eval")
        assert latest is not None and latest.actor == "bo"
        assert latest.data == {"metrics": {"acc": "NaN"}}
        assert [r.id for r in results.history(commit)] == [second, first]
        with pytest.raises(ValueError):
            results.record(commit, "other", {}, actor="ana")
    db = sqlite3.connect(tmp_path / "r" / ".coral" / "coral.db")
    assert db.execute("SELECT version FROM schema_versions WHERE component='ci'").fetchone() == (1,)
    db.close()


def test_benchmark_and_report_api(repo_path: Path) -> None:
    with Repository(repo_path) as repo:
        bench = benchmark_commit(repo, "main", record=False)
        assert bench.raw_bytes == 18688 and bench.ratio and bench.ratio > 0
        report = ci_report(repo, "v1", "broken", top=5)
    assert report.counts["changed"] == 2 and not report.validation.ok
    assert [t.name for t in report.changes] == ["head.weight", "encoder.weight"]
    md = report.markdown()
    assert md.startswith("### Coral: v1 (") and md.endswith("\n")


def test_write_github_workflow_api(tmp_path: Path) -> None:
    result = write_github_workflow(tmp_path)
    assert result.path == tmp_path / ".github" / "workflows" / "coral.yml"
    assert not result.overwritten
    assert "jobs" in yaml.safe_load(result.path.read_text())
    assert write_github_workflow(tmp_path, force=True).overwritten
