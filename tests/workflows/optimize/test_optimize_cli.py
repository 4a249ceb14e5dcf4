"""`coral optimize` sessions: the analysis as text and JSON, repacking under a profile, and
the mistakes a user makes, in-process and through a real `coral` process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import assert_user_error
from tests.workflows.optimize.conftest import files, snapshot


def test_analyze_prints_estimates_advice_and_the_command(coral):
    result = coral("optimize", "--analyze")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    for fragment in (
        "Trial-encoded",
        "storage.mode",
        "storage.chunk_bytes",
        "storage.max_chain_depth",
        "similarity.threshold",
        "default *",
        "Per layer type",
        "embedding",
        "embed.weight",
        "dedup",
        "gc: `coral gc` would free",
        "Recommended profile: ",
    ):
        assert fragment in text, fragment
    assert text.rstrip().splitlines()[-1].startswith("  coral optimize --apply ")


def test_analyze_json_shape(coral):
    result = coral("optimize", "--analyze", "--sample", "3", "--top", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {
        "lineages",
        "sampled_lineages",
        "sampled_tensors",
        "sample_bytes",
        "seed",
        "trials",
        "stored_bytes",
        "current",
        "settings",
        "layers",
        "tensors",
        "profiles",
        "recommended",
        "recommended_command",
        "marginal",
        "gc",
    } <= set(data)
    assert data["sampled_lineages"] == 3
    every = json.loads(coral("optimize", "--analyze", "--sample", "100%", "--json").stdout)
    assert every["sampled_lineages"] == every["lineages"]
    assert len(data["tensors"]) <= 2
    assert data["current"]["storage.mode"] == "default"
    assert set(data["gc"]) == {"removed", "freed_bytes"}
    assert {"key", "value", "current", "estimated_bytes", "saving", "by_layer"} == set(
        data["settings"][0]
    )


def test_apply_session_keeps_every_tensor(coral, repo_path: Path):
    before = snapshot(repo_path)
    dry = coral("optimize", "--apply", "archive", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "storage.mode: default -> max" in dry.stdout
    assert "nothing changed" in dry.stdout
    done = coral("optimize", "--apply", "archive", "--yes", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["verified"] == data["tensors"] > 0
    assert data["changes"]["storage.mode"] == {"from": "default", "to": "max"}
    assert coral("fsck").exit_code == 0
    assert snapshot(repo_path) == before
    shown = coral("config", "get", "storage.mode")
    assert shown.exit_code == 0 and "max" in shown.stdout
    again = coral("optimize", "--apply", "archive", "--yes")
    assert again.exit_code == 0, again.output
    assert "already in effect" in again.stdout and "verified" in again.stdout


def test_mistakes_are_user_errors(coral, repo_path: Path):
    before = files(repo_path)
    assert_user_error(coral("optimize"), "--analyze or --apply")
    assert_user_error(coral("optimize", "--analyze", "--apply", "fast"), "not both")
    assert_user_error(coral("optimize", "--analyze", "--sample", "lots"), "--sample")
    assert_user_error(coral("optimize", "--analyze", "--sample", "-1"), "sample")
    assert_user_error(coral("optimize", "--analyze", "--sample", "1.5"), "sample")
    assert_user_error(coral("optimize", "--analyze", "--dry-run"), "--apply")
    assert_user_error(coral("optimize", "--apply", "archive"), "--yes")
    assert_user_error(coral("optimize", "--apply", "achive", "--yes"), "achive", "archive")
    assert_user_error(coral("optimize", "--apply", "achive"), "achive")
    assert files(repo_path) == before


def test_outside_a_repository(tmp_path: Path):
    from typer.testing import CliRunner

    from coral.cli.main import app

    result = CliRunner().invoke(app, ["-C", str(tmp_path), "optimize", "--analyze"])
    assert_user_error(result, "not a Coral repository")


def test_subprocess_coral_optimize(repo_path: Path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coral.cli.main", "-C", str(repo_path), "optimize", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        )

    analyzed = run("--analyze", "--sample", "0.5")
    assert analyzed.returncode == 0, analyzed.stderr
    assert "coral optimize --apply" in analyzed.stdout
    applied = run("--apply", "fast", "--yes", "--json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["settings"]["storage.mode"] == "fast"
    refused = run("--apply", "archive")  # no terminal to ask: --yes is required
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and "\nhint: " in refused.stderr
