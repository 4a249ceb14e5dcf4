"""`coral` start-up: commands that need no heavy library do not import one, and a command
builds only itself (the root group converts its commands on first use).

Each check runs in a fresh interpreter (`sys.modules` of a real process); nothing is timed
here (start-up times are printed by `benchmarks/scale.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coral.cli.main import LazyCommands, root_command
from coral.version_control.repository import Repository

HEAVY = (
    "torch",
    "tensorflow",
    "transformers",
    "matplotlib",
    "fastapi",
    "starlette",
    "uvicorn",
    "textual",
    "scipy",
    "pandas",
    "onnx",
    "PIL",
    "jinja2",
    "safetensors",
    "dask",
    "distributed",
    "redis",
    "mlflow",
    "wandb",
    "sklearn",
    "h5py",
    "keras",
    "jax",
)
_PROBE = """
import json, sys
from coral.cli.main import main
code = main(sys.argv[1:])
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def loaded(repo: Path, *args: str) -> tuple[int, set[str]]:
    """Exit code and top-level packages imported by `coral ARGS` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], {m.split(".")[0] for m in report["modules"]}


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("startup") / "repo"
    with Repository.init(path) as repo:
        repo.add_all_weights({"w": np.zeros(4, np.float32)})
        repo.commit("first")
        repo.create_branch("side")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("log", "-n", "20"),
        ("log", "--oneline"),
        ("branch",),
        ("tag",),
        ("--help",),
        ("status", "--help"),
        ("log", "--help"),
    ],
    ids=lambda a: " ".join(a),
)
def test_light_commands_import_no_heavy_library(small_repo: Path, args: tuple[str, ...]) -> None:
    code, modules = loaded(small_repo, *args)
    assert code == 0
    heavy = sorted(modules.intersection(HEAVY))
    assert not heavy, f"`coral {' '.join(args)}` imported {heavy}"


# what reading refs and commits needs none of: numpy comes with the first tensor read, pydantic
# never (coral.cli.coercion converts the plain parameters typer would build adapters for)
NOT_FOR_HISTORY = ("numpy", "ml_dtypes", "pydantic", "pydantic_core")


@pytest.mark.parametrize(
    "args",
    [("status",), ("log", "-n", "20"), ("log", "--oneline", "--graph"), ("branch",), ("tag",)],
    ids=lambda a: " ".join(a),
)
def test_history_commands_import_neither_numpy_nor_pydantic(
    small_repo: Path, args: tuple[str, ...]
) -> None:
    code, modules = loaded(small_repo, *args)
    assert code == 0
    found = sorted(modules.intersection(NOT_FOR_HISTORY))
    assert not found, f"`coral {' '.join(args)}` imported {found}"


def test_a_command_builds_only_itself(small_repo: Path) -> None:
    command = root_command()
    commands = command.commands  # type: ignore[attr-defined]
    assert isinstance(commands, LazyCommands)
    assert "log" in commands and "remote" in commands and len(commands) > 30
    assert commands.built() == []
    with pytest.raises(SystemExit) as stopped:
        command.main(["-C", str(small_repo), "status"], prog_name="coral")
    assert stopped.value.code == 0
    assert commands.built() == ["status"]
    assert commands.get("no-such-command") is None
    assert commands["remote"].name == "remote" and "remote" in commands.built()


def test_help_still_lists_every_command(small_repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in ("log", "status", "branch", "remote", "stash", "experiment", "config"):
        assert f" {name} " in done.stdout, name
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


def test_unknown_command_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coral.cli.main", "lgo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr
