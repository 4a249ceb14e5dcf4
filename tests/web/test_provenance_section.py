"""Where a commit's weights came from, on the dashboard's commit page and in `coral browse`'s
commit pane: the base model, the training config (its hash and a few keys) and the datasets,
the same lines `coral provenance` prints; a commit that records none shows no section."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
from textual.pilot import Pilot
from textual.widgets import Static

from coral.porcelain.provenance import provenance_for, record_lines, record_summary
from coral.tui.app import BrowseApp
from coral.version_control.provenance import read_provenance
from coral.version_control.repository import Repository
from coral.web.app import create_app
from tests.tui.conftest import drive


def _repo(path: Path) -> tuple[str, str]:
    data = path.parent / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"text": "hello"}\n')
    with Repository.init(path) as repo:
        repo.add_all_weights({"w": np.zeros((4, 4), np.float32)})
        plain = str(repo.commit("base"))
        repo.add_all_weights({"w": np.ones((4, 4), np.float32)})
        recorded = provenance_for(
            repo, config={"lr": 3e-4, "epochs": 2}, datasets=[data], base="HEAD"
        )
        tuned = str(repo.commit("fine-tune", metadata=recorded))
    return plain, tuned


def test_commit_page_shows_the_record(tmp_path: Path) -> None:
    plain, tuned = _repo(tmp_path / "repo")
    app = create_app(tmp_path / "repo")

    async def get(path: str) -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.get(path)
            assert response.status_code == 200, response.text
            return response.text

    page = asyncio.run(get(f"/commit/{tuned}"))
    assert 'id="provenance"' in page
    assert f"base      HEAD ({plain[:10]})" in page and "lr=0.0003" in page
    assert "data: 1 file, 18 B, blake3" in page
    assert 'id="provenance"' not in asyncio.run(get(f"/commit/{plain}"))


def test_browse_commit_pane_shows_the_record(tmp_path: Path) -> None:
    _, tuned = _repo(tmp_path / "repo")
    with Repository(tmp_path / "repo") as repo:
        recorded = read_provenance(repo.read_commit(tuned).metadata)
    lines = record_lines(recorded, empty=False)
    assert lines[0].startswith("base") and any("epochs=2" in line for line in lines)
    assert record_summary(recorded).endswith("· 1 dataset") and record_summary({}) == ""

    seen: list[str] = []

    async def scenario(app: BrowseApp, pilot: Pilot[None]) -> None:
        detail = app.main.detail
        assert detail.detail is not None and detail.detail.commit.commit_hash == tuned
        seen.append(str(detail.query_one("#commit-header", Static).content))

    with Repository(tmp_path / "repo") as repo:
        drive(BrowseApp(repo), scenario, size=(120, 40))
    (header,) = seen
    assert "fine-tune" in header
    assert "base HEAD (" in header and "config " in header and "1 dataset" in header
