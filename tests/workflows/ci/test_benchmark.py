"""`coral ci benchmark`: measurements of a commit, an evaluation script, results recorded."""

from __future__ import annotations

import json
from pathlib import Path

from coral.version_control.ci_results import CIResults
from coral.version_control.repository import Repository
from tests.workflows.ci.conftest import Invoke, assert_user_error, ok, run_coral

EVAL = """
import json, os
from safetensors.numpy import load_file

w = load_file(os.environ["CORAL_WEIGHTS"])
print("progress output the parser must skip")
print(json.dumps({
    "accuracy": 0.75,
    "head_sum": float(w["head.weight"].astype("float64").sum()),
    "tensors": len(w),
    "commit": os.environ["CORAL_COMMIT"],
    "repo": os.environ["CORAL_REPO"],
    "ref": os.environ["CORAL_REF"],
}))
"""


def recorded(repo_path: Path, ref: str, kind: str) -> list[dict]:
    with Repository(repo_path) as repo:
        return [r.data for r in CIResults(repo.database).history(repo.resolve_ref(ref), kind)]


def test_benchmark_prints_measurements_and_records_them(coral: Invoke, repo_path: Path) -> None:
    out = ok(coral("ci", "benchmark"))
    assert out.startswith("Benchmark of HEAD (")
    for label in ("raw size", "stored", "full load", "peak memory", "checksummed"):
        assert label in out
    assert "recorded on" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    [data] = recorded(repo_path, "HEAD", "benchmark")
    assert data["raw_bytes"] == (64 * 64 + 64 + 8 * 64) * 4 and data["tensors"] == 3
    assert data["stored_bytes"] > 0 and data["load_seconds"] > 0 and data["peak_memory"] > 0


def test_json_and_no_record(coral: Invoke, repo_path: Path) -> None:
    data = json.loads(ok(coral("ci", "benchmark", "v1", "--no-record", "--json")))
    assert set(data) >= {
        "ref",
        "commit",
        "tensors",
        "parameters",
        "raw_bytes",
        "stored_bytes",
        "ratio",
        "load_seconds",
        "throughput",
        "peak_memory",
        "largest_tensor",
        "eval",
        "recorded",
    }
    assert data["recorded"] is False and data["eval"] is None
    assert data["parameters"] == 4672 and data["largest_tensor"] == 64 * 64 * 4
    assert recorded(repo_path, "v1", "benchmark") == []


def test_eval_script_metrics_are_recorded_on_the_commit(
    coral: Invoke, repo_path: Path, tmp_path: Path
) -> None:
    import numpy as np

    script = tmp_path / "eval.py"
    script.write_text(EVAL)
    out = ok(coral("ci", "benchmark", "main", "--eval", str(script)))
    assert "accuracy" in out and "evaluation" in out
    with Repository(repo_path) as repo:
        commit = repo.resolve_ref("main")
        head = repo.get_weight("head.weight", "main").data
    [data] = recorded(repo_path, "main", "eval")
    metrics = data["metrics"]
    assert metrics["commit"] == commit and metrics["ref"] == "main"
    assert Path(metrics["repo"]) == repo_path
    assert metrics["tensors"] == 3
    assert metrics["head_sum"] == float(head.astype(np.float64).sum())  # the commit, bit-exact
    report = json.loads(ok(coral("ci", "report", "v1", "main", "--json")))
    by_name = {m["name"]: m for m in report["metrics"]}
    assert by_name["accuracy"]["b"] == 0.75 and by_name["accuracy"]["a"] is None
    assert by_name["loss"]["delta"] == -0.5  # commit metrics sit beside the evaluation's


def test_eval_from_config(coral: Invoke, repo_path: Path) -> None:
    (repo_path / "score.py").write_text("print('{\"score\": 3}')\n")
    config = repo_path / ".coral" / "config.toml"
    config.write_text(config.read_text() + '\n[ci]\neval = "score.py"\n')
    data = json.loads(ok(coral("ci", "benchmark", "--json")))
    assert data["eval"]["metrics"] == {"score": 3}
    assert recorded(repo_path, "HEAD", "eval")[0]["metrics"] == {"score": 3}


def test_failing_scripts_are_clear_errors_and_record_nothing(
    coral: Invoke, repo_path: Path, tmp_path: Path
) -> None:
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('oops: no dataset', file=sys.stderr)\nsys.exit(3)\n")
    assert_user_error(coral("ci", "benchmark", "--eval", str(crash)), "exit 3", "oops")
    silent = tmp_path / "silent.py"
    silent.write_text("print('done')\n")
    assert_user_error(coral("ci", "benchmark", "--eval", str(silent)), "printed no metrics")
    assert_user_error(coral("ci", "benchmark", "--eval", "missing.py"), "missing.py")
    assert_user_error(coral("ci", "benchmark", "--eval", "no-such-command-xyz"), "not found")
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    assert_user_error(coral("ci", "benchmark", "--eval", str(slow), "--timeout", "0.5"), "stopped")
    assert recorded(repo_path, "HEAD", "eval") == []
    assert recorded(repo_path, "HEAD", "benchmark") == []
    assert_user_error(coral("ci", "benchmark", "nope"), "nope")


def test_benchmark_as_a_real_process(repo_path: Path) -> None:
    done = run_coral("ci", "benchmark", "--json", cwd=repo_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["recorded"] is True and data["tensors"] == 3
