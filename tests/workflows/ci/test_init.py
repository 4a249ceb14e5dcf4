"""`coral ci init --github`: the workflow file, and its shell steps run against a real remote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflows.ci.conftest import Invoke, assert_user_error, ok, run_coral


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def git_tree(path: Path) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_workflow_at_the_top_of_the_git_work_tree(
    coral: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = git_tree(tmp_path / "project")
    (top / "models").mkdir()
    monkeypatch.chdir(top / "models")
    out = ok(coral("ci", "init", "--github", repo=None))
    path = top / ".github" / "workflows" / "coral.yml"
    assert f"wrote {path}" in out
    wf = load(path)
    assert set(wf["on"]) == {"push", "pull_request"}
    assert set(wf["jobs"]) == {"validate", "report"}
    for job in wf["jobs"].values():
        uses = [step.get("uses", "") for step in job["steps"]]
        assert any(u.startswith("actions/checkout@") for u in uses)
        assert any(u.startswith("actions/setup-python@") for u in uses)
        assert any("pip install coral-vcs" in r for r in runs(job))
    assert "coral ci validate HEAD" in runs(wf["jobs"]["validate"])
    report = wf["jobs"]["report"]
    assert report["if"] == "github.event_name == 'pull_request'"
    assert report["permissions"]["pull-requests"] == "write"
    commands = runs(report)
    assert "coral ci report origin/main HEAD --markdown -o coral-report.md" in commands
    assert any(r.startswith("gh pr comment") for r in commands)
    comment = next(s for s in report["steps"] if s.get("run", "").startswith("gh pr comment"))
    assert comment["env"]["GH_TOKEN"] == "${{ github.token }}"


def test_existing_workflow_needs_force(
    coral: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no git work tree: the current folder
    ok(coral("ci", "init", "--github", repo=None))
    path = tmp_path / ".github" / "workflows" / "coral.yml"
    path.write_text("# mine\n")
    assert_user_error(coral("ci", "init", "--github", repo=None), "exists", "--force")
    assert path.read_text() == "# mine\n"
    out = ok(
        coral(
            "ci",
            "init",
            "--github",
            "--force",
            "--schema",
            "ci/schema.toml",
            "--base-branch",
            "trunk",
            repo=None,
        )
    )
    assert "overwrote" in out
    wf = load(path)
    assert wf["on"]["push"]["branches"] == ["trunk"]
    assert "coral ci validate HEAD --schema ci/schema.toml" in runs(wf["jobs"]["validate"])
    assert any("coral ci report origin/trunk HEAD" in r for r in runs(wf["jobs"]["report"]))


def test_a_ci_system_must_be_named(coral: Invoke) -> None:
    assert_user_error(coral("ci", "init", repo=None), "--github")


def test_the_workflow_steps_run(repo_path: Path, tmp_path: Path) -> None:
    """The workflow's own shell steps, run as a runner would (minus pip and gh), on a git work
    tree without weights: they clone the Coral remote, check out the pull request's branch,
    validate it and write the Markdown report against origin/main."""
    remote = f"file://{tmp_path / 'remote'}"
    for args in (
        ("remote", "add", "origin", remote),
        ("push", "origin", "main"),
        ("push", "origin", "broken"),
    ):
        done = run_coral(*args, cwd=repo_path)
        assert done.returncode == 0, done.stderr
    work = git_tree(tmp_path / "checkout")
    done = run_coral("ci", "init", "--github", cwd=work)
    assert done.returncode == 0, done.stderr
    wf = load(work / ".github" / "workflows" / "coral.yml")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "CORAL_REMOTE": remote,
        "CORAL_BRANCH": "broken",
        "COLUMNS": "80",
    }
    shell = [r for r in runs(wf["jobs"]["report"]) if "pip install" not in r and "gh pr" not in r]
    done = subprocess.run(
        ["bash", "-e", "-c", "\n".join(shell)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = (work / "coral-report.md").read_text()
    assert report.startswith("### Coral: origin/main (")
    assert "failed, 2 violations" in report
    validate = runs(wf["jobs"]["validate"])[-1]
    done = subprocess.run(
        ["bash", "-e", "-c", validate],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1 and "3 NaN values" in done.stdout  # the step fails the job
