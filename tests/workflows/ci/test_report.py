"""`coral ci report A B`: the comparison a pull-request comment shows."""

from __future__ import annotations

import json
from pathlib import Path

from tests.workflows.ci.conftest import Invoke, assert_user_error, ok, run_coral


def test_text_report(coral: Invoke) -> None:
    out = ok(coral("ci", "report", "v1", "main"))
    lines = out.splitlines()
    assert lines[0].startswith("Coral: v1 (") and "→ main (" in lines[0]
    assert "Tensors: 1 changed, 0 added, 0 removed, 2 identical" in out
    assert "Largest changes" in out and "head.weight" in out
    assert "Metrics" in out and "loss" in out and "-0.5" in out
    assert "Validation of main: passed (default checks)" in out
    assert all(len(line) <= 80 for line in lines)


def test_markdown_report(coral: Invoke) -> None:
    md = ok(coral("ci", "report", "v1", "main", "--markdown"))
    assert md.startswith("### Coral: v1 (")
    assert "| --- | --: | --: | --: |" in md
    assert "| `head.weight` | changed | (8, 64) |" in md
    assert "| `loss` | 1 | 0.5 | -0.5 |" in md
    assert "**Validation of main: passed (default checks)**" in md
    assert "\x1b[" not in md  # no terminal colour codes in a comment


def test_report_shows_a_failed_validation_but_succeeds(coral: Invoke) -> None:
    md = ok(coral("ci", "report", "main", "broken", "--markdown"))
    assert "**Validation of broken: failed, 2 violations (default checks)**" in md
    assert "- encoder.weight: 3 NaN values (allow_nan = false)" in md
    assert "| `encoder.weight` | changed | (64, 64) | NaN/inf |" in md


def test_output_file(coral: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    result = coral("ci", "report", "v1", "main", "--markdown", "-o", str(target))
    assert ok(result) == "" and "wrote" in result.stderr
    assert target.read_text() == ok(coral("ci", "report", "v1", "main", "--markdown"))
    text = tmp_path / "report.txt"
    ok(coral("ci", "report", "v1", "main", "-o", str(text)))
    assert text.read_text().startswith("Coral: v1 (")


def test_json_and_top(coral: Invoke) -> None:
    data = json.loads(ok(coral("ci", "report", "v1", "broken", "--json", "--top", "1")))
    assert set(data) == {
        "a",
        "b",
        "new_stored_bytes",
        "counts",
        "changes",
        "more_changes",
        "training_state_hidden",
        "metrics",
        "validation",
    }
    assert data["a"]["ref"] == "v1" and data["b"]["ref"] == "broken"
    assert data["counts"]["changed"] == 2 and data["more_changes"] == 1
    assert len(data["changes"]) == 1 and data["changes"][0]["name"] == "head.weight"
    assert data["validation"]["ok"] is False
    assert data["new_stored_bytes"] > 0


def test_schema_applies_to_the_validation(coral: Invoke, tmp_path: Path) -> None:
    schema = tmp_path / "s.toml"
    schema.write_text('[drift]\n"head.*" = 0.001\n')
    out = ok(coral("ci", "report", "v1", "main", "--schema", str(schema)))
    assert "Validation of main: passed" in out  # no base: drift limits need one
    schema.write_text('base = "v1"\n[drift]\n"head.*" = 0.001\n')
    out = ok(coral("ci", "report", "v1", "main", "--schema", str(schema)))
    assert "failed, 1 violation" in out and "head.weight: relative change" in out


def test_user_mistakes(coral: Invoke) -> None:
    assert_user_error(coral("ci", "report", "v1", "nope"), "nope")
    assert_user_error(coral("ci", "report", "nope", "main", "--markdown"), "nope")


def test_report_as_a_real_process(repo_path: Path) -> None:
    done = run_coral("ci", "report", "v1", "main", "--markdown", cwd=repo_path)
    assert done.returncode == 0, done.stderr
    assert "| `head.weight` | changed |" in done.stdout
