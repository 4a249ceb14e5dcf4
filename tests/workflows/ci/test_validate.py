"""`coral ci validate`: a commit against the default checks and against schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coral.version_control.repository import Repository
from tests.workflows.ci.conftest import Invoke, assert_user_error, ok, run_coral

SCHEMA_TOML = """
base = "v1"
allow_unlisted = false

[limits]
total_bytes = "16KiB"
tensor_bytes = "8KiB"
parameters = 4000
tensors = 2

[tensors."encoder.weight"]
shape = [64, 64]
dtype = "float32"
max_abs = 3.0

[tensors."head.*"]
shape = ["*", 32]
dtype = ["float16", "bfloat16"]

[tensors."decoder.weight"]

[drift]
"head.*" = 0.005
"""


def checks(result_json: str) -> set[tuple[str, str]]:
    return {(v["subject"], v["check"]) for v in json.loads(result_json)["violations"]}


def test_clean_commit_passes_the_default_checks(coral: Invoke) -> None:
    result = coral("ci", "validate")
    lines = ok(result).splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("HEAD (") and ": ok (3 tensors" in lines[0]


def test_nan_and_inf_are_violations_one_line_each(coral: Invoke) -> None:
    result = coral("ci", "validate", "broken")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert "encoder.weight: 3 NaN values (allow_nan = false)" in lines
    assert "encoder.weight: 1 infinite value (allow_inf = false)" in lines
    assert lines[-1].startswith("broken (") and "2 violations" in lines[-1]
    assert "error:" not in result.stderr  # violations are results, not a usage mistake


def test_json_shape(coral: Invoke) -> None:
    result = coral("ci", "validate", "broken", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert set(data) >= {
        "target",
        "commit",
        "schema",
        "ok",
        "tensors",
        "parameters",
        "bytes",
        "violations",
        "base",
        "drift",
        "summary",
    }
    assert data["ok"] is False and data["tensors"] == 3 and data["parameters"] == 4672
    assert {v["check"] for v in data["violations"]} == {"nan", "inf"}
    v = data["violations"][0]
    assert set(v) == {"subject", "check", "problem", "limit", "line"}
    assert v["line"] == f"{v['subject']}: {v['problem']} ({v['limit']})"
    assert len(data["commit"]) == 64


def test_drift_report_against_a_base(coral: Invoke) -> None:
    out = ok(coral("ci", "validate", "--base", "v1"))
    assert "Drift against v1" in out and "head.weight" in out and "2 identical" in out
    data = json.loads(ok(coral("ci", "validate", "--base", "v1", "--json")))
    drift = {d["name"]: d for d in data["drift"]}
    assert drift["encoder.weight"]["relative"] == 0.0
    assert drift["encoder.weight"]["category"] == "identical"
    assert 0.005 < drift["head.weight"]["relative"] < 0.02
    assert data["base"] == "v1" and data["ok"]


def test_schema_finds_every_kind_of_violation(coral: Invoke, tmp_path: Path) -> None:
    schema = tmp_path / "coral-ci.toml"
    schema.write_text(SCHEMA_TOML)
    result = coral("ci", "validate", "main", "--schema", str(schema), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["base"] == "v1"  # from the schema
    assert checks(result.stdout) == {
        ("decoder.weight", "missing"),
        ("encoder.bias", "unlisted"),
        ("encoder.weight", "max_abs"),
        ("encoder.weight", "tensor_bytes"),
        ("head.weight", "shape"),
        ("head.weight", "dtype"),
        ("head.weight", "drift"),
        ("model", "total_bytes"),
        ("model", "parameters"),
        ("model", "tensors"),
    }
    text = coral("ci", "validate", "main", "--schema", str(schema)).stdout.splitlines()
    assert 'head.weight: shape (8, 64) ("head.*": shape (*, 32))' in text
    assert any(line.startswith("head.weight: relative change 0.00") for line in text)
    assert text[-1].endswith("10 violations (3 tensors, 18.2 KiB, drift against v1)")


def test_schema_that_holds(coral: Invoke, tmp_path: Path) -> None:
    schema = tmp_path / "ok.toml"
    schema.write_text(
        '[tensors."encoder.weight"]\nshape = [64, 64]\ndtype = "float32"\n'
        '[tensors."*.bias"]\nrequired = true\n[limits]\ntotal_bytes = "1MB"\n'
        '[drift]\n"head.*" = 0.05\n"encoder.*" = 0.0\n'
    )
    out = ok(coral("ci", "validate", "--schema", str(schema), "--base", "v1"))
    assert ": ok (" in out.splitlines()[-1]


def test_same_schema_in_yaml_and_json(coral: Invoke, tmp_path: Path) -> None:
    import tomllib

    import yaml

    data = tomllib.loads(SCHEMA_TOML)
    (tmp_path / "s.toml").write_text(SCHEMA_TOML)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "s.json").write_text(json.dumps(data))
    found = [
        checks(coral("ci", "validate", "--schema", str(tmp_path / f"s.{ext}"), "--json").stdout)
        for ext in ("toml", "yaml", "json")
    ]
    assert found[0] == found[1] == found[2] and len(found[0]) == 10


def test_config_names_the_schema(coral: Invoke, repo_path: Path) -> None:
    (repo_path / "coral-ci.toml").write_text("[limits]\ntensors = 1\n")
    config = repo_path / ".coral" / "config.toml"
    config.write_text(config.read_text() + '\n[ci]\nschema = "coral-ci.toml"\n')
    result = coral("ci", "validate")
    assert result.exit_code == 1
    assert "model: 3 tensors (limits.tensors = 1)" in result.stdout


def test_training_state_is_left_out_unless_asked(tmp_path: Path, coral: Invoke) -> None:
    import numpy as np

    path = tmp_path / "ckpt"
    with Repository.init(path) as repo:
        repo.add_all_weights(
            {"w": np.ones(4, np.float32), "__optim__/m.w": np.full(4, np.nan, np.float32)}
        )
        repo.commit("ckpt")
    data = json.loads(ok(coral("ci", "validate", "--json", repo=path)))
    assert data["ok"] and data["tensors"] == 1 and data["training_state_skipped"] == 1
    schema = tmp_path / "all.toml"
    schema.write_text("include_training_state = true\n")
    result = coral("ci", "validate", "--schema", str(schema), repo=path)
    assert result.exit_code == 1 and "__optim__/m.w: 4 NaN values" in result.stdout


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("bogus = 1\n", "unknown key 'bogus'"),
        ("x = [\n", "cannot read"),
        ('[tensors."a"]\ndtype = "float99"\n', "unknown dtype 'float99'"),
        ('[tensors."a"]\nshape = [-3]\n', "a dimension is a number"),
        ('[tensors."a"]\nsize = 3\n', "unknown key 'size'"),
        ('[limits]\ntotal_bytes = "lots"\n', "bad size 'lots'"),
        ("[drift]\n'a' = -1\n", "must be a number >= 0"),
        ("allow_nan = 'no'\n", "allow_nan must be true or false"),
    ],
)
def test_bad_schema_is_a_clear_error(
    coral: Invoke, tmp_path: Path, text: str, fragment: str
) -> None:
    schema = tmp_path / "bad.toml"
    schema.write_text(text)
    assert_user_error(coral("ci", "validate", "--schema", str(schema)), fragment)


def test_user_mistakes(coral: Invoke, tmp_path: Path) -> None:
    assert_user_error(coral("ci", "validate", "nope"), "nope")
    assert_user_error(coral("ci", "validate", "--base", "nope"), "nope")
    assert_user_error(coral("ci", "validate", "--schema", str(tmp_path / "x.toml")), "no schema")
    assert_user_error(coral("ci", "validate", repo=tmp_path), "")


def test_validation_changes_nothing_stored(coral: Invoke, repo_path: Path) -> None:
    with Repository(repo_path) as repo:
        before = (repo.list_branches(), repo.head_commit(), sorted(repo.store.files()))
    coral("ci", "validate", "broken", "--base", "v1")
    with Repository(repo_path) as repo:
        after = (repo.list_branches(), repo.head_commit(), sorted(repo.store.files()))
        assert repo.fsck().ok
    assert [b.to_dict() for b in before[0]] == [b.to_dict() for b in after[0]]
    assert before[1:] == after[1:]


def test_validate_as_a_real_process(repo_path: Path) -> None:
    done = run_coral("ci", "validate", "broken", cwd=repo_path)
    assert done.returncode == 1, done.stderr
    assert "encoder.weight: 3 NaN values (allow_nan = false)" in done.stdout
    assert all(len(line) <= 80 for line in done.stdout.splitlines())
    clean = run_coral("-C", str(repo_path), "ci", "validate", "--base", "v1", cwd=repo_path.parent)
    assert clean.returncode == 0, clean.stderr
    assert "Drift against v1" in clean.stdout
