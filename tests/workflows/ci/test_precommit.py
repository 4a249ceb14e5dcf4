"""`.pre-commit-hooks.yaml`: each hook's entry, run the way pre-commit runs it (entry, args,
then the staged file names), passes and fails on real weight files."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from coral.cli.main import app
from tests.workflows.ci.conftest import assert_user_error, write_files

HOOKS_FILE = Path(__file__).resolve().parents[3] / ".pre-commit-hooks.yaml"


def hooks() -> dict[str, dict[str, Any]]:
    return {h["id"]: h for h in yaml.safe_load(HOOKS_FILE.read_text())}


def run_hook(hook: dict[str, Any], files: list[Path], args: list[str] | None = None):
    words = shlex.split(hook["entry"])
    assert words[:2] == ["coral", "ci"], hook["entry"]  # a real `coral ci ...` command
    command = [sys.executable, "-m", "coral.cli.main", *words[1:]]
    command += hook.get("args", []) if args is None else args
    return subprocess.run(
        [*command, *map(str, files)], capture_output=True, text=True, timeout=300, check=False
    )


def test_hook_definitions() -> None:
    found = hooks()
    assert set(found) == {"coral-weights-size", "coral-validate-weights"}
    for hook in found.values():
        assert hook["language"] == "python" and hook["name"]
        pattern = re.compile(hook["files"])
        for name in ("a.safetensors", "m.pt", "m.pth", "w.bin", "x.ckpt", "d.npz", "k.h5"):
            assert pattern.search(name), name
        for name in ("train.py", "README.md", "a.safetensors.json"):
            assert not pattern.search(name), name
    assert found["coral-weights-size"]["args"][0] == "--max-bytes"


def test_size_hook(tmp_path: Path) -> None:
    files = write_files(tmp_path)
    hook = hooks()["coral-weights-size"]
    small = run_hook(hook, [files["base"], files["torch"]])
    assert small.returncode == 0, small.stdout + small.stderr
    big = tmp_path / "big.h5"
    big.write_bytes(b"\0" * 4096)
    done = run_hook(hook, [files["base"], big], args=["--max-bytes", "2KiB"])
    assert done.returncode == 1
    assert f"{files['base']}: file is 18.5 KiB (--max-bytes 2.0 KiB)" in done.stdout
    assert f"{big}: file is 4.0 KiB" in done.stdout
    assert "2 files: 2 violations (file sizes only)" in done.stdout


def test_validate_hook(tmp_path: Path) -> None:
    files = write_files(tmp_path)
    hook = hooks()["coral-validate-weights"]
    clean = run_hook(hook, [files["base"]])
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip().endswith(": ok (3 tensors, 18.2 KiB)")
    bad = run_hook(hook, [files["base"], files["broken"], files["empty"], files["torch"]])
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert f"{files['broken']}:encoder.weight: 3 NaN values (allow_nan = false)" in lines
    assert f"{files['empty']}:a: empty tensor, shape (0, 3) (allow_empty = false)" in lines
    assert f"{files['torch']}:b: 1 NaN value (allow_nan = false)" in lines
    assert lines[-1].startswith("4 files: 4 violations")
    junk = run_hook(hook, [files["junk"]])
    assert junk.returncode == 1 and f"{files['junk']}: " in junk.stdout
    assert "Traceback" not in junk.stderr


def test_validate_files_with_a_schema_and_json(tmp_path: Path) -> None:
    files = write_files(tmp_path / "w")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"tensors": {"head.weight": {"shape": [8, 32]}}}))
    runner = CliRunner()
    result = runner.invoke(
        app, ["ci", "validate-files", "--schema", str(schema), "--json", str(files["base"])]
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [v["subject"] for v in data["violations"]] == [f"{files['base']}:head.weight"]
    assert data["files"] == [str(files["base"])]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--size-only"], "--max-bytes"),
        (["--max-bytes", "lots"], "bad size"),
        ([], "no such file"),
    ],
)
def test_validate_files_mistakes(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(app, ["ci", "validate-files", *args, str(tmp_path / "x.pt")])
    assert_user_error(result, fragment)
