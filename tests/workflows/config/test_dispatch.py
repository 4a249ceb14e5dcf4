"""Two-word spellings (`coral export onnx REF OUT`), the dispatch rules, one-line help."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer

from coral.cli import dispatch
from coral.cli.main import app
from coral.version_control.repository import Repository
from tests.workflows.config.conftest import Proc, Run, assert_user_error

ROOT_COMMAND = typer.main.get_command(app)


def lookup(name: str) -> dispatch.Shape | None:
    command = ROOT_COMMAND.commands.get(name)  # type: ignore[attr-defined]
    return dispatch.Shape.of(command) if command is not None else None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["import", "onnx", "m.onnx"], ["import-onnx", "m.onnx"]),
        (
            ["-C", "r", "import", "onnx", "m.onnx", "-m", "x"],
            ["-C", "r", "import-onnx", "m.onnx", "-m", "x"],
        ),
        (["import", "keras", "m.keras"], ["import-keras", "m.keras"]),
        (["import", "tensorflow", "saved"], ["import-tensorflow", "saved"]),
        (["export", "onnx", "HEAD", "out.onnx"], ["export-onnx", "HEAD", "out.onnx"]),
        (["export", "onnx", "--help"], ["export-onnx", "--help"]),
        # not enough arguments for the two-word command: the words mean what they say
        (["import", "onnx"], ["import", "onnx"]),
        (["import", "onnx", "-m", "msg"], ["import", "onnx", "-m", "msg"]),
        (["export", "onnx", "out.safetensors"], ["export", "onnx", "out.safetensors"]),
        (
            ["export", "onnx", "--template", "t.onnx", "out"],
            ["export", "onnx", "--template", "t.onnx", "out"],
        ),
        (["import", "model.safetensors"], ["import", "model.safetensors"]),
        (["import", "numpy", "x"], ["import", "numpy", "x"]),  # no import-numpy
        (["log", "onnx", "x"], ["log", "onnx", "x"]),
    ],
)
def test_two_word_rewrites(args: list[str], expected: list[str], tmp_path: Path) -> None:
    assert dispatch.plan(args, lookup, cwd=tmp_path).args == expected


def test_the_target_is_looked_up_when_it_runs(tmp_path: Path) -> None:
    added = {"import-wandb": dispatch.Shape(1)}

    def later(name: str) -> dispatch.Shape | None:
        return added.get(name) if name.startswith("import-") else lookup(name)

    assert dispatch.plan(["import", "wandb", "run"], later, cwd=tmp_path).args == [
        "import-wandb",
        "run",
    ]
    added.clear()
    assert dispatch.plan(["import", "wandb", "run"], later, cwd=tmp_path).args == [
        "import",
        "wandb",
        "run",
    ]


def test_global_options_are_skipped_to_find_the_command() -> None:
    assert dispatch.command_index(["-C", "repo", "-v", "log"]) == 3
    assert dispatch.command_index(["--repo=x", "--verbose", "log"]) == 2
    assert dispatch.command_index(["--help"]) is None
    assert dispatch.repo_option(["-C", "a", "-C", "b", "log"], 4) == "b"
    assert dispatch.repo_option(["last", "-C", "c"], 0) == "c"


def test_import_onnx_of_a_file_named_onnx_still_imports_it(
    coral: Run, repo: Path, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "onnx").mkdir()  # a model folder literally named `onnx`
    shutil.copy(models["base"], tmp_path / "onnx" / "model.safetensors")
    result = coral("import", "onnx", "--json")
    assert result.exit_code == 0, result.output
    with Repository(repo) as r:
        assert sorted(r.list_weights()) == ["encoder.bias", "encoder.weight", "head.weight"]
        assert json.loads(result.stdout)["commit_hash"] == r.head_commit()


def _onnx_model(path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import helper, numpy_helper

    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(weight, "w")],
    )
    onnx.save(helper.make_model(graph), str(path))


def test_import_onnx_and_export_onnx_spelled_in_two_words(
    coral_proc: Proc, repo: Path, tmp_path: Path
) -> None:
    model = tmp_path / "m.onnx"
    _onnx_model(model)
    imported = coral_proc("import", "onnx", str(model), "-m", "from onnx", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["commit_hash"]
    out = tmp_path / "out.onnx"
    exported = coral_proc("export", "onnx", "HEAD", str(out), "--template", str(model))
    assert exported.returncode == 0, exported.stderr
    import onnx
    from onnx import numpy_helper

    (init,) = onnx.load(str(out)).graph.initializer
    assert (
        numpy_helper.to_array(init).tobytes()
        == numpy_helper.to_array(onnx.load(str(model)).graph.initializer[0]).tobytes()
    )


def test_two_word_mistakes_report_the_two_word_command(coral: Run, tmp_path: Path) -> None:
    assert_user_error(coral("import", "onnx", str(tmp_path / "missing.onnx")), "missing.onnx")


def test_help_summaries_are_one_sentence_on_one_line(coral: Run) -> None:
    for name, command in ROOT_COMMAND.commands.items():  # type: ignore[attr-defined]
        ROOT_COMMAND.get_command(None, name)  # type: ignore[arg-type]
        assert command.short_help is None or "\n" not in command.short_help, name
    fsck = ROOT_COMMAND.commands["fsck"]  # type: ignore[attr-defined]
    assert fsck.short_help == "Verify every object's hash, every reference and the database."
    shown = coral("--help", env={"COLUMNS": "200"}).stdout
    add_line = next(line for line in shown.splitlines() if "│ add " in line)
    assert "tokenizer files, ...)." in add_line  # the whole summary on one row
