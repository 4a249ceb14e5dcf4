"""The dashboard over real HTTP: the JSON API, paging, bad input (404/400, never a traceback),
read-only, the loopback Host check, the token, and the offline OpenAPI reference."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.web.conftest import TOKEN, Served, http_get
from tests.web.sample_repo import BIG_TENSORS

PAGES = [
    "/",
    "/log",
    "/log?all=true&per=3&page=2",
    "/commit/HEAD",
    "/commit/v1?q=attn&per=5",
    "/commit/big?page=3",
    "/tensor?ref=HEAD&name=embed.weight",
    "/diff?from=HEAD~3&to=HEAD",
    "/diff?from=HEAD~3&to=HEAD&training=true&show=all",
    "/diff",
    "/metrics",
    "/metrics?metric=loss&experiment=none",
    "/storage",
    "/storage?page=1&per=3",
    "/remotes",
    "/activity",
    "/activity?page=1&per=5",
    "/docs",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders(served: Served, path: str) -> None:
    status, headers, body = served.get(path)
    assert status == 200, body[:1000]
    assert headers["content-type"].startswith("text/html")
    text = body.decode()
    assert "Traceback" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "an external resource"


def test_api_endpoints(served: Served) -> None:
    b = served.built
    overview = served.json("/api/overview")
    assert overview["head"] == {"branch": "main", "commit": b.merge, "detached": False}
    on_head = len(b.main) + 1  # main's commits and the merged branch's
    assert {t["name"] for t in overview["tags"]} == {"v1"} and overview["commits"] == on_head
    log = served.json("/api/log?per=4")
    assert log["total"] == on_head and log["pages"] == 3
    assert next(r["commit"]["commit_hash"] for r in log["rows"] if r["commit"]) == b.merge
    assert served.json("/api/log?all=true")["total"] == len(b.main) + 2
    commit = served.json("/api/commits/HEAD~1")
    assert commit["commit_hash"] == b.main[-2] and commit["experiments"][0]["name"] == "baseline"
    diff = served.json(f"/api/diff?from={b.main[0]}&to=HEAD")
    assert "adapter.weight" in diff["added"] and diff["training_state_left_out"] == 1
    in_b = [t for t in diff["tensors"] if t["category"] != "removed"]
    assert diff["summary"]["total_layers_b"] == len(in_b)
    tensor = served.json("/api/tensor?ref=HEAD&name=embed.weight")
    assert tensor["shape"] == [32, 16] and "storage" in tensor
    metrics = served.json("/api/metrics?metric=loss")
    assert list(metrics["series"]) == ["loss"]
    (exp,) = served.json("/api/experiments")
    (curve,) = served.json(f"/api/experiments/curves?experiment={exp['experiment_id']}")
    assert curve["metric"] == "loss" and len(curve["points"]) == 40
    storage = served.json("/api/storage?per=2")
    assert len(storage["commits"]) == 2 and storage["total"] == len(b.main) + 2
    assert storage["commits"][0]["commit"] in (b.big, b.merge)  # newest first
    (origin,) = served.json("/api/remotes")
    assert origin["name"] == "origin"
    (publish,) = served.json("/api/publishes")
    assert publish["commit"] == b.merge
    kinds = {a["kind"] for a in served.json("/api/activity?per=100")}
    assert {"commit", "merge", "tag", "remote", "publish"} <= kinds


def test_a_thousand_tensors_page(served: Served) -> None:
    first = served.json("/api/tensors?ref=big&q=block.*&per=100")
    assert first["matching"] == BIG_TENSORS and first["pages"] == 10
    assert len(first["tensors"]) == 100 and first["tensors"][0]["stored_bytes"] > 0
    last = served.json("/api/tensors?ref=big&q=block.*&per=100&page=9")
    assert len(last["tensors"]) == 100 and last["page"] == 9
    status, _, body = served.get("/commit/big?q=block.*&per=100&page=4")
    assert status == 200 and body.decode().count('<td class="name">') == 100


@pytest.mark.parametrize(
    "path, status",
    [
        ("/commit/nope", 404),
        ("/commit/" + "a" * 64, 404),
        ("/api/commits/nope", 404),
        ("/tensor?ref=HEAD&name=nope", 404),
        ("/tensor?ref=HEAD&name=../../../../etc/passwd", 404),
        ("/tensor?ref=nope&name=embed.weight", 404),
        ("/diff?from=nope&to=HEAD", 404),
        ("/api/diff?from=HEAD&to=" + quote("HEAD~99"), 404),
        ("/commit/..%2F..%2F..%2Fetc%2Fpasswd", 404),
        ("/commit/../../etc/passwd", 404),
        ("/static/..%2F..%2Fapp.py", 404),
        ("/static/../templates/base.html", 404),
        ("/static/coral.py", 404),
        ("/log?page=-1", 400),
        ("/log?per=0", 400),
        ("/commit/HEAD?page=abc", 400),
        ("/diff?show=everything", 400),
        ("/api/log?per=1000000", 400),
        ("/no/such/page", 404),
        ("/api/nothing", 404),
    ],
)
def test_bad_input_is_answered_without_a_traceback(served: Served, path: str, status: int) -> None:
    got, headers, body = served.get(path)
    assert got == status, body[:500]
    text = body.decode()
    assert "Traceback" not in text and 'File "' not in text
    if path.startswith("/api/"):
        err = json.loads(text)
        assert err["status"] == status and err["error"]
    else:
        assert headers["content-type"].startswith("text/html") and "error-message" in text


def test_read_only(served: Served) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD"):
        status, _, body = http_get(served.url + "/api/overview", method=method)
        assert status == 405, method
        assert method == "HEAD" or b"read-only" in body


def test_loopback_host_header_is_required_without_a_token(served: Served) -> None:
    status, _, body = served.get("/", Host="attacker.example")
    assert status == 400 and b"Host" in body
    for host in ("localhost", f"localhost:{served.url.rsplit(':', 1)[1]}", "[::1]:1"):
        assert served.get("/api/overview", Host=host)[0] == 200


def test_token_is_required_on_every_request(served_token: Served) -> None:
    for path in ("/", "/api/overview", "/static/coral.css", "/openapi.json", "/commit/HEAD"):
        status, _, body = served_token.get(path)
        assert status == 401 and b"Traceback" not in body, path
    assert served_token.get("/?token=wrong")[0] == 401
    assert served_token.get("/api/overview", Authorization="Bearer wrong")[0] == 401
    status, headers, _ = served_token.get(f"/?token={TOKEN}")
    assert status == 200 and "coral_token=" in headers.get("set-cookie", "")
    assert "httponly" in headers["set-cookie"].lower()
    assert served_token.get("/api/overview", Authorization=f"Bearer {TOKEN}")[0] == 200
    assert served_token.get("/log", Cookie=f"coral_token={TOKEN}")[0] == 200
    # a token-protected server answers any Host: the token is the protection
    assert served_token.get(f"/?token={TOKEN}", Host="my-box.example:8080")[0] == 200


def test_openapi_document_and_offline_reference(served: Served) -> None:
    schema = served.json("/openapi.json")
    paths = set(schema["paths"])
    assert {"/api/overview", "/api/log", "/api/diff", "/api/storage", "/api/tensors"} <= paths
    assert not any(p.startswith("/commit") for p in paths)  # pages are not API
    status, _, body = served.get("/docs")
    text = body.decode()
    assert status == 200 and "/api/diff" in text and "swagger" not in text.lower()
    assert served.get("/redoc")[0] == 404


def test_non_finite_numbers_are_strict_json(tmp_path: Path) -> None:
    import numpy as np

    from coral.version_control.repository import Repository
    from coral.web.app import create_app
    from coral.web.server import background_server

    repo = Repository.init(tmp_path / "r")
    repo.add_all_weights({"w": np.zeros(3, np.float32)})
    repo.commit("zeros")
    repo.add_all_weights({"w": np.array([np.nan, 1.0, np.inf], np.float32)})
    repo.commit("nan", metadata={"metrics": {"loss": float("nan")}})
    with background_server(create_app(repo)) as url:
        status, _, body = http_get(url + "/api/tensor?ref=HEAD&name=w")
        assert status == 200 and json.loads(body)["values"]["nonfinite"] == 2
        status, _, body = http_get(url + "/api/diff?from=HEAD~1&to=HEAD")
        (w,) = json.loads(body)["tensors"]  # strict JSON: a bare NaN would not parse
        assert w["metrics"]["relative"] == "Infinity"
        commit = json.loads(http_get(url + "/api/commits/HEAD")[2])
        assert commit["metadata"]["metrics"]["loss"] == "NaN"  # as `coral show --json` prints
        assert json.loads(http_get(url + "/api/metrics")[2])["series"] == {"loss": [None, None]}
        for page in ("/metrics", "/tensor?ref=HEAD&name=w", "/diff?from=HEAD~1&to=HEAD"):
            assert http_get(url + page)[0] == 200, page
    repo.close()


def test_a_commit_made_while_serving_shows_up(tmp_path: Path) -> None:
    import numpy as np

    from coral.version_control.repository import Repository
    from coral.web.app import create_app
    from coral.web.server import background_server

    Repository.init(tmp_path / "r").close()
    served = Repository(tmp_path / "r", shared_staging=True)
    with background_server(create_app(served)) as url:
        assert json.loads(http_get(url + "/api/log")[2])["total"] == 0
        assert http_get(url + "/")[0] == 200 and http_get(url + "/log")[0] == 200
        writer = Repository(tmp_path / "r")  # another writer, as another process would be
        for step in range(2):
            writer.add_all_weights({"w": np.full(4, step, np.float32)})
            head = writer.commit(f"step {step}")
        writer.close()
        log = json.loads(http_get(url + "/api/log")[2])
        assert log["total"] == 2 and log["rows"][0]["commit"]["commit_hash"] == head
        assert json.loads(http_get(url + "/api/storage")[2])["total"] == 2
        assert http_get(url + f"/commit/{head}")[0] == 200
    served.close()
