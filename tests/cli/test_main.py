"""The `coral` entry point: command registration, error reporting, completions, subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import coral.cli
from coral import errors
from coral.cli.main import app, register_commands
from coral.integrations.formats import FORMATS, READ_ONLY_FORMATS
from coral.version_control.repository import Repository
from tests.cli.conftest import Invoke, assert_user_error

EXPECTED = {
    "init",
    "add",
    "commit",
    "status",
    "log",
    "show",
    "diff",
    "branch",
    "checkout",
    "merge",
    "tag",
    "gc",
    "fsck",
    "stats",
    "import",
    "export",
    "completions",
    "reset",
    "rm",
}


def _command_names() -> set[str]:
    group = typer.main.get_command(app)
    return set(group.commands)  # type: ignore[attr-defined]


def test_every_command_is_registered() -> None:
    assert _command_names() >= EXPECTED


def test_modules_with_register_are_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new module in coral/cli with `register(app)` adds commands without touching main.py."""
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "hello_cmd.py").write_text(
        textwrap.dedent("""
        import typer
        ORDER = 5
        def hello(name: str = "world") -> None:
            typer.echo(f"hello {name}")
        def register(app: typer.Typer) -> None:
            app.command()(hello)
    """)
    )
    (extra / "helper_without_register.py").write_text("X = 1\n")
    (extra / "broken_optional.py").write_text("import a_module_that_is_not_installed\n")
    monkeypatch.setattr(coral.cli, "__path__", [*coral.cli.__path__, str(extra)])
    new_app = typer.Typer()
    names = register_commands(new_app)
    assert "hello_cmd" in names and "helper_without_register" not in names
    assert names.index("hello_cmd") < names.index("staging")  # ORDER places it
    result = CliRunner().invoke(new_app, ["hello", "--name", "coral"])
    assert result.output.strip() == "hello coral"
    for mod in ("hello_cmd", "helper_without_register"):
        sys.modules.pop(f"coral.cli.{mod}", None)


def test_messages_name_only_existing_commands() -> None:
    """Every `coral CMD` a message, hint or help text mentions is a real command (no hint may
    send users to `coral pull` or `coral remote` before remotes exist)."""
    commands = _command_names()
    mentioned: dict[str, set[str]] = {}
    package = Path(coral.__file__).parent
    for path in package.rglob("*.py"):
        for name in re.findall(r"`coral ([a-z][a-z-]*)", path.read_text(encoding="utf-8")):
            mentioned.setdefault(name, set()).add(str(path.relative_to(package)))
    assert {n: sorted(f) for n, f in mentioned.items() if n not in commands} == {}
    assert mentioned.keys() >= {"fsck", "gc", "add"}  # the pattern does find them
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.CoralError) and cls.default_hint:
            assert not re.search(r"\bpull\b", cls.default_hint), cls


def test_import_and_add_help_list_every_readable_format() -> None:
    named = {"onnx": ".onnx", "keras": ".keras", "tf-savedmodel": "SavedModel"}
    named["tf-checkpoint"] = "TensorFlow"
    for command in ("import", "add"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        for fmt in (*FORMATS, *READ_ONLY_FORMATS):
            if fmt in ("safetensors", "npz"):
                assert f".{fmt}" in result.output, (command, fmt)
            elif fmt in named:
                assert named[fmt] in result.output, (command, fmt)


def test_watch_help_names_the_config_section() -> None:
    result = CliRunner().invoke(app, ["watch", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "default: [watch] patterns" in result.output


def test_help_and_version() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("import", "export", "merge", "stats"):
        assert name in result.output
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("coral ")


def test_not_a_repository(tmp_path: Path, coral: Invoke) -> None:
    assert_user_error(coral("log", repo=tmp_path), "not a Coral repository", "coral init")


def test_unknown_ref(coral: Invoke) -> None:
    for args in (
        ["show", "nope"],
        ["diff", "nope"],
        ["checkout", "nope"],
        ["log", "nope"],
        ["export", "nope", "x.npz"],
        ["branch", "b2", "nope"],
        ["tag", "t", "nope"],
    ):
        assert_user_error(coral(*args), "nope")


def test_corrupt_object_is_named_with_its_file(
    repo_path: Path, coral: Invoke, tmp_path: Path
) -> None:
    from coral.version_control.repository import Repository
    from tests.storage.damage import flip_record_byte, locate

    with Repository(repo_path) as repo:
        for chunk in repo.store.list_blobs("chunk"):
            _, _, length = locate(repo.store, chunk)
            flip_record_byte(repo.store, chunk, length // 2, 0xFF)
    result = coral("export", "HEAD", str(tmp_path / "out.safetensors"))
    assert_user_error(result, "corrupt object", ".coral/objects/packs/")
    fsck = coral("fsck")
    assert_user_error(fsck, "problem")
    assert "checksum" in fsck.stdout or "mismatch" in fsck.stdout or "corrupt" in fsck.stdout


def test_verbose_adds_the_traceback(coral: Invoke, repo_path: Path) -> None:
    result = CliRunner().invoke(app, ["-C", str(repo_path), "--verbose", "show", "nope"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "error: unknown ref" in result.stderr


def test_usage_errors_exit_2_with_a_hint(coral: Invoke) -> None:
    result = coral("log", "--bogus")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "hint: see `coral log --help`" in result.stderr
    assert coral("commit").exit_code == 2  # -m is required


def test_missing_file_is_a_user_error(coral: Invoke, tmp_path: Path) -> None:
    assert_user_error(coral("add", str(tmp_path / "nothing.safetensors")), "nothing.safetensors")
    (tmp_path / "w.h5").write_bytes(b"x")
    assert_user_error(coral("import", str(tmp_path / "w.h5")), "unknown checkpoint format")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion_scripts(shell: str) -> None:
    result = CliRunner().invoke(app, ["completions", shell])
    assert result.exit_code == 0
    assert "_CORAL_COMPLETE" in result.output and "coral" in result.output


def test_completion_of_refs_tags_and_weights(repo_path: Path) -> None:
    from coral.cli._common import complete_branch, complete_ref, complete_tag, complete_weight

    class Ctx:  # what click hands a callback while completing: the root's parsed params
        def __init__(self) -> None:
            self.params = {"repo": repo_path}

        def find_root(self) -> Ctx:
            return self

    ctx = Ctx()
    assert complete_branch(ctx, "") == ["feature", "main"]  # type: ignore[arg-type]
    assert complete_tag(ctx, "v") == ["v1"]  # type: ignore[arg-type]
    assert complete_ref(ctx, "") == ["HEAD", "feature", "main", "v1"]  # type: ignore[arg-type]
    assert complete_ref(ctx, "v1:enc") == ["v1:encoder.bias", "v1:encoder.weight"]  # type: ignore[arg-type]
    assert complete_weight(ctx, "head") == ["head.weight"]  # type: ignore[arg-type]


def _coral_exe() -> str:
    exe = Path(sys.executable).with_name("coral")
    if not exe.exists():
        pytest.skip("the `coral` entry point is not installed (pip install -e .)")
    return str(exe)


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_coral_exe(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_entry_point_end_to_end(tmp_path: Path) -> None:
    from coral.integrations.formats import save_weights

    save_weights({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, tmp_path / "ckpt.safetensors")
    assert _run("init", cwd=tmp_path).returncode == 0
    imported = _run("import", "ckpt.safetensors", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    log = _run("log", "--json", cwd=tmp_path)
    assert log.returncode == 0
    assert json.loads(log.stdout)[0]["message"] == "Import ckpt.safetensors"
    failed = _run("show", "missing-ref", cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[0].startswith("error: unknown ref")
    assert failed.stderr.splitlines()[1].startswith("hint: ")
    assert "Traceback" not in failed.stderr and failed.stdout == ""


def test_entry_point_completes_branch_names(repo_path: Path) -> None:
    env = {
        "_CORAL_COMPLETE": "complete_bash",
        "COMP_WORDS": f"coral -C {repo_path} checkout fe",
        "COMP_CWORD": "4",
    }
    result = _run(cwd=repo_path.parent, env=env)
    assert result.stdout.split() == ["feature"]


def test_closed_stdout_is_quiet(repo_path: Path) -> None:
    """`coral log | head`: when the reader goes away, no error and no traceback."""
    with Repository(repo_path) as repo:
        for i in range(30):
            repo.add_all_weights({"step": np.full(4, i, np.float32)})
            repo.commit(f"step {i}\n\n" + "long message line\n" * 200)
    proc = subprocess.Popen(
        [_coral_exe(), "-C", str(repo_path), "log"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert stderr == ""
    assert proc.returncode in (0, 1)


def test_an_argument_that_is_not_utf8_is_a_user_error_and_loses_nothing(
    repo_path: Path, tmp_path: Path
) -> None:
    """A byte that is not UTF-8 in a message (the shell passes it as a lone surrogate) is one
    error line and a hint, not a traceback; what was staged stays staged."""
    ckpt = tmp_path / "w.npz"
    np.savez(ckpt, **{"encoder.bias": np.ones(8, np.float32)})
    env = {**os.environ, "COLUMNS": "80"}
    run = [sys.executable, "-m", "coral.cli.main", "-C", str(repo_path)]
    assert subprocess.run([*run, "add", str(ckpt)], env=env, capture_output=True).returncode == 0
    for args in (["commit", "-m", b"bad \xff byte"], ["tag", b"v\xff"]):
        argv = [a if isinstance(a, bytes) else a.encode() for a in [*run, *args]]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines[0].startswith("error: a name or message is not valid UTF-8"), proc.stderr
        assert lines[1].startswith("hint: ") and "Traceback" not in proc.stderr
    with Repository(repo_path, shared_staging=True) as repo:  # the CLI's staging area
        assert "encoder.bias" in repo.staged_changes()  # still staged
        assert [c.message for c in repo.log()] == ["second", "first"]
