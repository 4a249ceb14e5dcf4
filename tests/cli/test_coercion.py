"""Plain parameters (bool, str, int, float, Path and lists of them) are converted by
`coral.cli.coercion`, not by typer's pydantic adapters: same values, one-line errors, and
typer's own checks where a parameter asks for them (`file_okay=False` on `-C`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer._click import Context
from typer.main import get_command

from coral.cli import coercion
from coral.cli.coercion import PlainRuntimeParam, plain_runtime_param
from coral.cli.main import app, root_command
from tests.cli.conftest import Invoke


def _all_params() -> list[tuple[str, object]]:
    root = root_command()
    ctx = Context(root)
    found = []
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        command = root.get_command(ctx, name)  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None) or {name: command}
        for sub_name, sub in subs.items():
            found.extend((f"{name} {sub_name}", p) for p in sub.params)
    return found


def test_every_plain_parameter_gets_the_plain_coercion() -> None:
    kept = {}
    for where, param in _all_params():
        descriptor = param.type_descriptor  # type: ignore[attr-defined]
        runtime = plain_runtime_param(param)  # type: ignore[arg-type]
        if runtime is None:
            kept[f"{where} {param.name}"] = repr(descriptor.annotation)  # type: ignore[attr-defined]
    # what typer still converts: choices (enums) and bounded integers, nothing plain
    assert kept, "the check would pass vacuously"
    for name, annotation in kept.items():
        assert "enum" in annotation or "int" in annotation, (name, annotation)
    assert len(kept) <= 8, kept


def _param(annotation: object) -> PlainRuntimeParam:
    """The plain coercion typer's parameter `--x` of type `annotation` gets."""

    def f(x: str | None = None) -> None:
        """A command whose one option typer converts."""

    f.__annotations__["x"] = annotation | None  # type: ignore[operator]
    app_ = typer.Typer(add_completion=False)
    app_.command()(f)
    param = next(p for p in get_command(app_).params if p.name == "x")
    runtime = plain_runtime_param(param)
    assert runtime is not None
    return runtime


@pytest.mark.parametrize(
    ("annotation", "given", "expected"),
    [
        (int, "12", 12),
        (int, " -3 ", -3),
        (float, "0.25", 0.25),
        (float, "1e-3", 1e-3),
        (str, "héllo", "héllo"),
        (Path, "a/b.safetensors", Path("a/b.safetensors")),
        (bool, "yes", True),
        (bool, "0", False),
        (list[str], ("a", "b"), ["a", "b"]),
        (list[Path], ("x", "y"), [Path("x"), Path("y")]),
    ],
)
def test_values_convert_as_typer_did(annotation: object, given: object, expected: object) -> None:
    runtime = _param(annotation)
    param = type("P", (), {"name": "x", "multiple": False, "nargs": 1})()
    assert runtime._coerce_value(given, param, None) == expected  # type: ignore[arg-type]


def test_a_bad_number_is_a_usage_error_naming_the_option(coral: Invoke) -> None:
    result = coral("log", "-n", "many")
    assert result.exit_code == 2
    assert "'many' is not a valid integer" in result.stderr
    assert "--max-count" in result.stderr and "Traceback" not in result.stderr


def test_typer_checks_still_apply_to_paths(tmp_path: Path, coral: Invoke) -> None:
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    result = coral("-C", str(a_file), "status", repo=None)
    assert result.exit_code == 2 and "is a file" in result.stderr


def test_light_commands_build_no_pydantic_adapter(repo_path: Path) -> None:
    probe = (
        "import sys\n"
        "from coral.cli.main import main\n"
        f"code = main(['-C', {str(repo_path)!r}, 'log', '-n', '1', '--oneline'])\n"
        "assert code == 0, code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic')[:3])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_install_is_idempotent_and_keeps_typer_for_the_rest() -> None:
    coercion.install()
    coercion.install()
    result = typer.testing.CliRunner().invoke(app, ["completions", "nosuchshell"])
    assert result.exit_code == 2  # an enum: typer's choice check, its own message
    assert "nosuchshell" in result.output
