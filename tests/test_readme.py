"""README.md is executable documentation: every ```python block runs, and the `coral` command
lines of the ```bash blocks use only commands and options that exist.

Each python block runs on its own, as a script, in a fresh temporary working directory, with the
interpreter running the tests; blocks run two at a time (the slow ones — those importing
Lightning, transformers or Keras — first), so the whole file stays well under a minute.
A block whose first line is `# readme-test: skip (needs a server)` is skipped: the registry and
experiments tests cover those APIs against real servers.

A bash block whose first line is `# readme-test: run` is a shell session run as written
(`bash -e`, `coral` on PATH), in a fresh folder where the nearest python block above it whose
first line is `# readme-test: fixture` has run first (it writes the files the session uses).
Other bash blocks name the reader's own files and are not run; their `coral ...` lines are
checked against the CLI's own definition.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP_MARKER = "# readme-test: skip"
RUN_MARKER = "# readme-test: run"
FIXTURE_MARKER = "# readme-test: fixture"
SLOW_IMPORTS = ("lightning", "transformers", "keras")
TIMEOUT_S = 180
WORKERS = 2
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    lang: str
    line: int  # line of the opening fence in README.md
    code: str

    @property
    def first_line(self) -> str:
        return self.code.lstrip().splitlines()[0] if self.code.strip() else ""

    @property
    def skipped(self) -> bool:
        return self.first_line.startswith(SKIP_MARKER)

    @property
    def session(self) -> bool:
        """A bash block the suite runs."""
        return self.lang == "bash" and self.first_line.startswith(RUN_MARKER)

    @property
    def slow(self) -> bool:
        return any(re.search(rf"^\s*(from|import)\s+{m}\b", self.code, re.M) for m in SLOW_IMPORTS)


def blocks(lang: str) -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in _FENCE.finditer(text)
        if m.group(1) == lang
    ]


PYTHON = blocks("python")
BASH = blocks("bash")
SESSIONS = [b for b in BASH if b.session]


def fixture_for(session: Block) -> Block | None:
    """The nearest `# readme-test: fixture` python block above `session`."""
    above = [b for b in PYTHON if b.line < session.line and b.first_line.startswith(FIXTURE_MARKER)]
    return above[-1] if above else None


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(
        MPLBACKEND="Agg",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        WANDB_MODE="offline",
        TF_CPP_MIN_LOG_LEVEL="3",
        OMP_NUM_THREADS="1",  # two snippets share the cores
        CORAL_AUTHOR="readme <readme@example.com>",
    )
    return env


def _script(block: Block, folder: Path) -> list[str]:
    """Write `block` into `folder` as a script; the command line that runs it there."""
    suffix = "sh" if block.lang == "bash" else "py"
    script = folder / f"readme_line_{block.line}.{suffix}"
    script.write_text(block.code, encoding="utf-8")
    return ["bash", "-ex", script.name] if block.lang == "bash" else [sys.executable, script.name]


Completed = subprocess.CompletedProcess[str]


def _run_script(block: Block, folder: Path, env: dict[str, str]) -> Completed:
    try:
        return subprocess.run(
            _script(block, folder),
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return subprocess.CompletedProcess(exc.cmd, -1, out, f"timed out after {TIMEOUT_S}s")


def _run(block: Block) -> subprocess.CompletedProcess[str]:
    """Run a python block, or a shell session after its fixture, in a fresh folder."""
    env = _env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    fixture = fixture_for(block) if block.session else None
    with tempfile.TemporaryDirectory(prefix="coral-readme-") as tmp:
        if fixture is not None:
            prepared = _run_script(fixture, Path(tmp), env)
            if prepared.returncode != 0:
                return prepared
        return _run_script(block, Path(tmp), env)


@pytest.fixture(scope="module")
def results() -> Iterator[dict[int, Future[subprocess.CompletedProcess[str]]]]:
    """Every runnable block started at once (WORKERS at a time, slow ones first)."""
    runnable = sorted((b for b in [*PYTHON, *SESSIONS] if not b.skipped), key=lambda b: not b.slow)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        yield {b.line: pool.submit(_run, b) for b in runnable}


def test_readme_has_python_blocks() -> None:
    assert len(PYTHON) >= 10
    assert sum(b.skipped for b in PYTHON) <= 2, "keep the skipped blocks few"


@pytest.mark.parametrize("block", PYTHON, ids=[f"line{b.line}" for b in PYTHON])
def test_python_block_runs(
    block: Block, results: dict[int, Future[subprocess.CompletedProcess[str]]]
) -> None:
    if block.skipped:
        pytest.skip(f"README.md line {block.line}: {block.code.strip().splitlines()[0]}")
    proc = results[block.line].result()
    assert proc.returncode == 0, (
        f"README.md python block at line {block.line} failed (exit {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )


@pytest.mark.parametrize("block", SESSIONS, ids=[f"line{b.line}" for b in SESSIONS])
def test_shell_session_runs(
    block: Block, results: dict[int, Future[subprocess.CompletedProcess[str]]]
) -> None:
    fixture = fixture_for(block)
    proc = results[block.line].result()
    assert proc.returncode == 0, (
        f"README.md shell session at line {block.line} (fixture: line "
        f"{fixture.line if fixture else None}) failed (exit {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )


# -- bash blocks: `coral` commands and options must exist -------------------------------------
def _click_command() -> object:
    import typer

    from coral.cli.main import app

    return typer.main.get_command(app)


def _options(command: object) -> set[str]:
    return {o for p in getattr(command, "params", []) for o in (*p.opts, *p.secondary_opts)}


def coral_lines() -> list[tuple[int, str]]:
    out = []
    for block in BASH:
        if block.session:
            continue  # run as written instead (aliases and your own commands are real there)
        for i, line in enumerate(block.code.splitlines(), start=block.line + 1):
            if line.strip().startswith("coral "):
                out.append((i, line.strip()))
    return out


def test_bash_blocks_use_real_commands_and_options() -> None:
    root = _click_command()
    global_opts = _options(root)
    problems = []
    lines = coral_lines()
    assert len(lines) >= 30
    for lineno, line in lines:
        tokens = shlex.split(line, comments=True)[1:]
        tokens = tokens[: next((i for i, t in enumerate(tokens) if t in {">", "|", "&&"}), None)]
        while tokens and tokens[0] in global_opts:  # -C PATH / --verbose before the command
            tokens = tokens[2:] if tokens[0] in ("-C", "--repo") else tokens[1:]
        command, path = root, []
        # a group's own options end its subcommands (`coral serve --port 9000`)
        while tokens and hasattr(command, "commands") and not tokens[0].startswith("-"):
            name = tokens.pop(0)
            sub = command.commands.get(name)  # type: ignore[attr-defined]
            if sub is None:
                problems.append(f"line {lineno}: no command `coral {' '.join([*path, name])}`")
                break
            command, path = sub, [*path, name]
        else:
            allowed = _options(command) | {"--help", "-h"}
            for token in tokens:
                if token.startswith("-") and not re.fullmatch(r"-[\d.]+", token):
                    option = token.split("=", 1)[0]
                    if option not in allowed:
                        problems.append(f"line {lineno}: `coral {' '.join(path)}` has no {option}")
    assert not problems, "\n".join(problems)
