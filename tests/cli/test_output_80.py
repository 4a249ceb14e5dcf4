"""DESIGN §8 at 80 columns: tables fit, a tensor name is never broken or cut, hashes print at
10 characters, training state stays out of diffs unless asked for, model files diff as text."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from coral.cli.main import app
from coral.version_control.repository import Repository

LAYERS = 12
NAMES = [
    f"encoder.layer.{i}.attention.output.{part}"
    for i in range(LAYERS)
    for part in ("dense.weight", "dense.bias", "LayerNorm.weight", "LayerNorm.bias")
]
HASH = re.compile(r"\b[0-9a-f]{7,64}\b")


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    repo = Repository.init(tmp_path / "repo")
    first = {
        n: rng.standard_normal((16, 16) if "weight" in n else 16).astype(np.float32) for n in NAMES
    }
    first["__optim__/0/state/0/exp_avg"] = np.zeros(16, np.float32)
    repo.add_all_weights(first)
    repo.add_file("config.json", b'{\n  "hidden_size": 16,\n  "layers": 12\n}\n')
    repo.commit("first")
    second = {n: a + np.float32(1e-3) for n, a in first.items() if "dense" in n}
    second["__optim__/0/state/0/exp_avg"] = np.ones(16, np.float32)
    repo.add_all_weights(second)
    repo.add_file("config.json", b'{\n  "hidden_size": 16,\n  "layers": 24\n}\n')
    repo.commit("second")
    repo.close()
    return tmp_path / "repo"


def run(repo_dir: Path, *args: str, columns: int = 80) -> str:
    res = CliRunner().invoke(app, ["-C", str(repo_dir), *args], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    return res.stdout


def assert_fits(text: str, columns: int = 80) -> list[str]:
    lines = text.splitlines()
    too_long = [line for line in lines if cell_len(line) > columns]
    assert not too_long, too_long[:3]
    return lines


def names_intact(text: str, names: list[str]) -> None:
    words = set(text.split())
    missing = [n for n in names if n not in words]
    assert not missing, missing[:5]


def test_diff_at_80_columns_keeps_every_name_whole(repo_dir: Path) -> None:
    text = run(repo_dir, "diff", "HEAD~1", "HEAD")
    lines = assert_fits(text)
    changed = [n for n in NAMES if "dense" in n]
    names_intact(text, changed)
    assert len(lines) < len(changed) + 20  # one line per tensor, not a name over 7 lines
    assert "24 changed" in text and "__optim__" not in text  # training state left out


def test_diff_include_training_state_and_layers(repo_dir: Path) -> None:
    text = run(repo_dir, "diff", "HEAD~1", "HEAD", "--include-training-state")
    assert "__optim__/0/state/0/exp_avg" in text.split()
    only = run(repo_dir, "diff", "HEAD~1", "HEAD", "--layers", "encoder.layer.1.*")
    listed = [n for n in NAMES if n in only.split()]
    assert listed == [
        "encoder.layer.1.attention.output.dense.weight",
        "encoder.layer.1.attention.output.dense.bias",
    ]
    assert "2 changed" in only


def test_diff_shows_model_file_changes_as_text(repo_dir: Path) -> None:
    text = run(repo_dir, "diff", "HEAD~1", "HEAD")
    assert "config.json" in text
    assert '-  "layers": 12' in text and '+  "layers": 24' in text


def test_narrow_terminal_switches_to_records_without_cutting_names(repo_dir: Path) -> None:
    text = run(repo_dir, "diff", "HEAD~1", "HEAD", columns=40)
    names_intact(text, [n for n in NAMES if "dense" in n])


def test_show_and_stats_fit_and_print_hashes_at_10(repo_dir: Path) -> None:
    show = run(repo_dir, "show", "HEAD")
    assert_fits(show)
    names_intact(show, NAMES)
    assert "config.json" in show
    table_hashes = [h for line in show.splitlines()[1:] for h in HASH.findall(line)]
    assert table_hashes and all(len(h) == 10 for h in table_hashes)
    stats = run(repo_dir, "stats")
    assert_fits(stats)
    hashes = HASH.findall(stats)
    assert hashes and all(len(h) == 10 for h in hashes)
    assert "first" in stats and "second" in stats


def test_piped_output_without_columns_is_80_wide(repo_dir: Path) -> None:
    res = CliRunner().invoke(app, ["-C", str(repo_dir), "show", "HEAD"], env={"COLUMNS": ""})
    assert res.exit_code == 0
    assert_fits(res.stdout)
