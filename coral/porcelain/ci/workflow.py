"""`coral ci init --github`: a GitHub Actions workflow that validates the model on every push
and pull request, and comments a comparison with the base branch on pull requests.

The weights live in a Coral remote (`CORAL_REMOTE`, a repository variable: `s3://...`,
`gs://...`, a `coral serve --remote` URL), or in the work tree itself when `.coral` is there.
The Coral branch checked is named like the git branch (`CORAL_BRANCH`); the report compares it
with `origin/main` and is posted with `gh pr comment`.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from coral.errors import CoralError

WORKFLOW_PATH = Path(".github") / "workflows" / "coral.yml"
DEFAULT_INSTALL = "coral-vcs"
REPORT_FILE = "coral-report.md"


@dataclass
class WorkflowResult:
    path: Path
    root: Path  # the git work tree (or the folder) it was written in
    overwritten: bool

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "root": str(self.root), "overwritten": self.overwritten}


def work_tree_root(start: Path) -> Path:
    """The top of the git work tree holding `start`, else `start` itself."""
    try:
        done = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:  # no git installed
        return start
    top = done.stdout.strip()
    return Path(top) if done.returncode == 0 and top else start


def github_workflow(
    *,
    schema: str | None = None,
    base_branch: str = "main",
    install: str = DEFAULT_INSTALL,
    python: str = "3.11",
) -> str:
    """The workflow's YAML text."""
    schema_arg = f" --schema {shlex.quote(schema)}" if schema else ""
    base = shlex.quote(f"origin/{base_branch}")
    setup = _SETUP.format(python=python, install=shlex.quote(install))
    return _WORKFLOW.format(
        base_branch=base_branch,
        setup=setup,
        schema_arg=schema_arg,
        base=base,
        report=REPORT_FILE,
    )


def write_github_workflow(
    start: Path,
    *,
    force: bool = False,
    schema: str | None = None,
    base_branch: str = "main",
    install: str = DEFAULT_INSTALL,
) -> WorkflowResult:
    """Write `.github/workflows/coral.yml` at the top of the git work tree holding `start` (or
    in `start`); an existing file is kept unless `force`."""
    root = work_tree_root(start.absolute())
    path = root / WORKFLOW_PATH
    existed = path.exists()
    if existed and not force:
        raise CoralError(
            f"{path} exists",
            hint="pass --force to overwrite it, or edit it by hand",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = github_workflow(schema=schema, base_branch=base_branch, install=install)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return WorkflowResult(path, root, existed)


_SETUP = """\
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "{python}"
      - name: Install Coral
        run: python -m pip install {install}
      - name: Open the Coral repository
        run: |
          if [ ! -d .coral ]; then
            if [ -z "$CORAL_REMOTE" ]; then
              echo "::error::set the repository variable CORAL_REMOTE to the Coral remote's URL"
              exit 1
            fi
            coral clone "$CORAL_REMOTE" .
          else
            coral fetch origin || echo "no remote origin: using the refs in the work tree"
          fi
          if coral show "origin/$CORAL_BRANCH" > /dev/null 2>&1; then
            coral checkout "origin/$CORAL_BRANCH"
          fi
"""

_WORKFLOW = """\
# Written by `coral ci init --github`. Validates the model on every push and pull request and
# comments a comparison with {base_branch} on pull requests.
#
# The weights come from a Coral remote: set the repository variable CORAL_REMOTE (Settings >
# Secrets and variables > Actions > Variables) to its URL, e.g. s3://bucket/model; store its
# credentials as secrets and add them to env, e.g. AWS_ACCESS_KEY_ID: ${{{{ secrets.AWS_KEY }}}}.
# A work tree that holds .coral itself needs neither. The Coral branch checked is the one named
# like the git branch (`coral ci report` compares it with origin/{base_branch}).
name: Coral

on:
  push:
    branches: [{base_branch}]
  pull_request:

env:
  CORAL_REMOTE: ${{{{ vars.CORAL_REMOTE }}}}
  CORAL_BRANCH: ${{{{ github.head_ref || github.ref_name }}}}

jobs:
  validate:
    runs-on: ubuntu-latest
    steps:
{setup}      - name: Validate the weights
        run: coral ci validate HEAD{schema_arg}

  report:
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-latest
    permissions:
      contents: read
      pull-requests: write
    steps:
{setup}      - name: Compare with {base_branch}
        run: coral ci report {base} HEAD --markdown -o {report}{schema_arg}
      - name: Comment on the pull request
        run: gh pr comment "$PR" --body-file {report}
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          PR: ${{{{ github.event.pull_request.number }}}}
"""
