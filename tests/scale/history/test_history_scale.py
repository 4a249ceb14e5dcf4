"""`coral log`, `status` and `branch` on a long history read a bounded number of objects.

The history has `CORAL_SCALE_HISTORY_COMMITS` commits (default 10 000; see conftest.py).
Timing is measured by `benchmarks/scale.py`, never asserted here: these tests count the
objects each command reads (`reads`), so a command that walks the whole history fails.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from benchmarks.scale import build_history
from coral.cli.main import app
from coral.porcelain.history import log_entries
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.scale.history.conftest import COMMITS


def coral(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["-C", str(repo), *args])


def test_log_n_reads_only_what_it_shows(long_history: Path, reads: Counter[str]) -> None:
    result = coral(long_history, "log", "-n", "20", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [e["message"] for e in entries] == [f"step {COMMITS - 1 - i}" for i in range(20)]
    assert entries[0]["refs"] == ["HEAD -> main", "tag: v1"]
    assert entries[0]["metadata"]["metrics"]["loss"] == pytest.approx(1 / COMMITS)
    assert reads["commit"] <= 22, reads  # the 20 shown, and the parent of the last
    assert reads["tree"] == 0 and reads["tensor"] == 0 and reads["chunk"] == 0, reads


def test_log_text_and_oneline_are_bounded_too(long_history: Path, reads: Counter[str]) -> None:
    result = coral(long_history, "log", "-n", "5", "--oneline")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and lines[0].endswith(f"(HEAD -> main, tag: v1) step {COMMITS - 1}")
    assert all(len(line) <= 80 for line in lines)
    result = coral(long_history, "log", "-n", "3")
    assert result.exit_code == 0 and result.stdout.count("\ncommit ") + 1 == 3
    assert reads["commit"] <= 5 + 1 + 3 + 1, reads


def test_status_reads_head_only(long_history: Path, reads: Counter[str]) -> None:
    result = coral(long_history, "status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["branch"] == "main" and status["clean"]
    assert reads["commit"] <= 1 and reads["tree"] <= 1, reads
    assert reads["tensor"] == 0 and reads["chunk"] == 0, reads


def test_branch_reads_one_commit_per_branch(long_history: Path, reads: Counter[str]) -> None:
    result = coral(long_history, "branch", "--json")
    assert result.exit_code == 0, result.output
    names = {b["name"]: b for b in json.loads(result.stdout)}
    assert set(names) == {"main", "side"} and names["main"]["is_current"]
    result = coral(long_history, "branch")
    assert result.exit_code == 0 and "step 0" in result.stdout
    assert reads["commit"] <= 2 * len(names), reads  # a subject per branch, each listing
    assert reads["tree"] == 0, reads


def test_log_from_a_ref_and_a_bad_ref(long_history: Path, reads: Counter[str]) -> None:
    result = coral(long_history, "log", "side", "-n", "20", "--json")
    assert result.exit_code == 0, result.output
    assert [e["message"] for e in json.loads(result.stdout)] == ["step 0"]
    assert_user_error(coral(long_history, "log", "-n", "20", "no-such-ref"), "no-such-ref")
    assert reads["commit"] <= 3, reads


def test_subprocess_log_status_branch(long_history: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "coral.cli.main", "-C", str(long_history), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    log = run("log", "-n", "2", "--json")
    assert log.returncode == 0, log.stderr
    assert [e["message"] for e in json.loads(log.stdout)] == [
        f"step {COMMITS - 1}",
        f"step {COMMITS - 2}",
    ]
    status = run("status")
    assert status.returncode == 0 and "On branch main" in status.stdout
    branch = run("branch")
    assert branch.returncode == 0 and "* main" in branch.stdout
    bad = run("branch", "-d", "nope")
    assert bad.returncode == 1 and "error:" in bad.stderr and "hint:" in bad.stderr


def test_whole_history_is_intact(long_history: Path) -> None:
    """Nothing the commands read was changed: every commit is there, in order, and the
    oldest one's weights read back."""
    with Repository(long_history) as repo:
        log = repo.log()
        assert len(log) == COMMITS
        assert [c.message for c in log[:2]] == [f"step {COMMITS - 1}", f"step {COMMITS - 2}"]
        assert log[-1].parent_hashes == []
        assert all(c.parent_hashes == [p.commit_hash] for c, p in itertools.pairwise(log))
        old = repo.get_all_weights(log[-1].commit_hash)
        assert old["w"].data.tolist() == [0.0] * 4 and old["b"].data.tolist() == [1.0] * 2
        assert repo.get_weight("w").data.tolist() == [float(COMMITS - 1)] * 4


def test_api_log_entries_page(long_history: Path, reads: Counter[str]) -> None:
    with Repository(long_history) as repo:
        page = log_entries(repo, "HEAD", 50)
        assert len(page) == 50 and page[-1].commit.message == f"step {COMMITS - 50}"
        assert page[0].refs == ["HEAD -> main", "tag: v1"]
    assert reads["commit"] <= 51, reads


def test_build_history_makes_valid_objects(tmp_path: Path) -> None:
    """The benchmark's fast builder writes what `fsck` accepts."""
    with build_history(tmp_path / "small", 30, batch=7) as repo:
        report = repo.fsck()
        assert report.ok, report
        assert len(repo.log()) == 30
