"""`make demo`'s script runs end to end: training, commits per epoch, the best tag, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_script(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    repo = tmp_path / "demo-repo"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), str(repo)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "$ coral -C" in out and "log --oneline" in out
    assert "(HEAD -> main" in out and "tag: best" in out
    assert "Storage per commit" in out and "epoch 6" in out
    assert "changed" in out and "2.weight" in out
    assert "4 changed, 0 added, 0 removed, 2 identical" in out  # the frozen layer is deduplicated
    from coral.version_control.repository import Repository

    with Repository(repo) as r:
        assert len(r.log()) == 6
        assert "accuracy" in r.get_commit("best").metrics
