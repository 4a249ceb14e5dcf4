"""`coral remote|push|fetch|pull|clone|sync` from the command line, on `file://` remotes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from coral.cli.main import app
from coral.version_control.repository import Repository
from tests.remotes.helpers import file_url, open_remote


@pytest.fixture
def coral():
    """Run `coral ARGS...` in-process (`repo=` adds `-C REPO`); returns the click Result."""
    runner = CliRunner()

    def invoke(*args: str, repo: Path | None = None) -> Result:
        prefix = ["-C", str(repo)] if repo is not None else []
        return runner.invoke(app, [*prefix, *args])

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result


def one_error(result: Result, *words: str, hint: str | None = None) -> str:
    """Exit 1 with exactly one `error:` line and a `hint:` line; returns the stderr text."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error:"), result.stderr
    assert sum(line.startswith("error:") for line in lines) == 1, result.stderr
    hints = [i for i, line in enumerate(lines) if line.startswith("hint:")]
    assert hints, result.stderr
    assert "Traceback" not in result.output
    text = " ".join(result.stderr.split())
    for word in words:
        assert word in text, (word, result.stderr)
    if hint is not None:
        assert hint in " ".join(" ".join(lines[hints[0] :]).split()), result.stderr
    return text


def checkpoint(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        encoder=rng.standard_normal((16, 8)).astype(np.float32),
        bias=np.full(8, seed, np.float32),
    )
    return path


def commit_checkpoint(coral, repo: Path, seed: int, message: str) -> str:
    ok(coral("add", str(checkpoint(repo.parent / f"ckpt-{seed}.npz", seed)), repo=repo))
    ok(coral("commit", "-m", message, repo=repo))
    return head(repo)


def head(repo: Path) -> str:
    with Repository(repo) as r:
        return str(r.head_commit())


def tensor(repo: Path, ref: str, name: str) -> np.ndarray:
    with Repository(repo) as r:
        return np.asarray(r.get_weight(name, ref).data)


def remote_main(where: Path | str) -> str | None:
    return open_remote(where).list_refs().get("heads/main")


@pytest.fixture
def team(coral, tmp_path: Path):
    """A with one commit, origin added and pushed; B cloned from the remote."""
    a, b, remote_dir = tmp_path / "A", tmp_path / "B", tmp_path / "remote"
    ok(coral("init", str(a)))
    commit_checkpoint(coral, a, 1, "first")
    ok(coral("remote", "add", "origin", file_url(remote_dir), repo=a))
    ok(coral("push", repo=a))
    ok(coral("clone", file_url(remote_dir), str(b)))
    return a, b, remote_dir


@pytest.fixture(
    params=[
        "file",
        pytest.param("s3", marks=pytest.mark.server),
    ]
)
def team_url(request, tmp_path: Path, monkeypatch) -> str:
    """Where the team's remote lives: a folder, or a bucket on a real S3 server (SeaweedFS)."""
    if request.param == "file":
        return file_url(tmp_path / "remote")
    server = request.getfixturevalue("seaweedfs")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    monkeypatch.setenv("AWS_REGION", server.region)
    host = server.endpoint.removeprefix("http://")
    return f"minio://{host}/{server.create_bucket()}/team"


def test_team_workflow(coral, tmp_path: Path, team_url: str) -> None:
    a, b, url = tmp_path / "A", tmp_path / "B", team_url
    ok(coral("init", str(a)))
    c1 = commit_checkpoint(coral, a, 1, "first")
    added = ok(coral("remote", "add", "origin", url, repo=a))
    assert "origin" in added.stdout
    pushed = ok(coral("push", repo=a))
    assert "origin/main" in pushed.stdout and "pushed" in pushed.stdout
    assert remote_main(url) == c1

    cloned = ok(coral("clone", url, str(b)))
    assert "cloned" in cloned.stdout
    assert head(b) == c1
    listed = ok(coral("remote", "list", repo=b))
    assert "origin" in listed.stdout and url in listed.stdout
    assert np.array_equal(tensor(b, "HEAD", "encoder"), tensor(a, "HEAD", "encoder"))

    # B commits and pushes; A pulls (fast-forward)
    c2 = commit_checkpoint(coral, b, 2, "from B")
    ok(coral("push", repo=b))
    assert remote_main(url) == c2
    pulled = ok(coral("pull", repo=a))
    assert "fast-forward" in pulled.stdout
    assert head(a) == c2
    assert tensor(a, "HEAD", "bias").tobytes() == np.full(8, 2, np.float32).tobytes()

    # both diverge; B pushes first
    ca = commit_checkpoint(coral, a, 3, "from A")
    cb = commit_checkpoint(coral, b, 4, "from B again")
    ok(coral("push", repo=b))
    rejected = coral("push", repo=a)
    text = one_error(rejected, "non-fast-forward", hint="pull")
    assert "main" in text
    assert remote_main(url) == cb
    assert head(a) == ca

    # plain pull refuses to merge; --strategy average merges
    diverged = coral("pull", repo=a)
    one_error(diverged, "diverged", hint="--strategy")
    assert head(a) == ca
    merged = ok(coral("pull", "--strategy", "average", repo=a))
    assert "merged" in merged.stdout
    m = head(a)
    with Repository(a) as r:
        assert r.read_commit(m).parent_hashes == [ca, cb]
    expected = (np.full(8, 3, np.float64) + np.full(8, 4, np.float64)) / 2
    assert np.allclose(tensor(a, "HEAD", "bias"), expected)

    # the merge descends from the remote's tip: the push goes through, B fast-forwards
    ok(coral("push", repo=a))
    assert remote_main(url) == m
    ok(coral("pull", repo=b))
    assert head(b) == m


def test_json_output_parses(coral, team) -> None:
    a, b, remote_dir = team
    url = file_url(remote_dir)
    c2 = commit_checkpoint(coral, a, 2, "second")

    push = json.loads(ok(coral("push", "--json", repo=a)).stdout)
    assert push["remote"] == "origin" and push["errors"] == []
    assert push["pushed_commits"] == 1 and push["pushed_weights"] >= 1
    assert push["refs"]["heads/main"]["new"] == c2
    assert push["bytes_transferred"] > 0

    fetch = json.loads(ok(coral("fetch", "--json", repo=b)).stdout)
    assert fetch["refs"] == {"heads/main": c2} and fetch["pulled_commits"] == 1
    assert fetch["updated_branch"] is None

    pull = json.loads(ok(coral("pull", "--json", repo=b)).stdout)
    assert pull["updated_branch"] == "main" and pull["errors"] == [] and pull["merged"] is False
    assert head(b) == c2

    clone = json.loads(ok(coral("clone", "--json", url, str(a.parent / "C"))).stdout)
    assert Path(clone["path"]) == (a.parent / "C").absolute()
    assert clone["updated_branch"] == "main" and clone["pulled_commits"] == 2
    assert head(a.parent / "C") == c2

    show = json.loads(ok(coral("remote", "show", "--json", repo=a)).stdout)
    assert show["name"] == "origin" and show["url"] == url and show["backend"] == "local"
    assert show["initialized"] is True and show["refs"] == {"heads/main": c2}
    assert show["weights"] >= 2 and show["packs"] >= 2 and show["bytes"] > 0

    listed = json.loads(ok(coral("remote", "list", "--json", repo=a)).stdout)
    assert [r["name"] for r in listed] == ["origin"] and listed[0]["url"] == url

    added = json.loads(
        ok(coral("remote", "add", "--json", "backup", file_url(a.parent / "bk"), repo=a)).stdout
    )
    assert added["name"] == "backup" and added["backend"] == "local"

    sync = json.loads(ok(coral("sync", "--json", "backup", repo=a)).stdout)
    assert sync["pull"] is None and sync["push"]["pushed_commits"] == 2


def test_human_output_of_show_and_fetch(coral, team) -> None:
    a, b, _ = team
    show = ok(coral("remote", "show", repo=a))
    assert "origin" in show.stdout and "local" in show.stdout and "heads/main" in show.stdout
    c2 = commit_checkpoint(coral, a, 2, "second")
    ok(coral("push", repo=a))
    fetched = ok(coral("fetch", repo=b))
    assert "origin/main" in fetched.stdout and c2[:10] in fetched.stdout
    assert "fetched" in fetched.stdout
    with Repository(b) as r:
        assert r.resolve_ref("origin/main") == c2
    log = ok(coral("log", "origin/main", repo=b))
    assert "second" in log.stdout


def test_push_all_branches_and_tags(coral, team) -> None:
    a, _, remote_dir = team
    ok(coral("branch", "side", repo=a))
    ok(coral("tag", "v1", repo=a))
    ok(coral("push", repo=a))
    assert set(open_remote(remote_dir).list_refs()) == {"heads/main"}  # current branch only
    ok(coral("push", "--all", "--tags", repo=a))
    assert set(open_remote(remote_dir).list_refs()) == {"heads/main", "heads/side", "tags/v1"}


def test_force_push_overwrites(coral, team) -> None:
    a, b, remote_dir = team
    commit_checkpoint(coral, b, 2, "from B")
    ok(coral("push", repo=b))
    ca = commit_checkpoint(coral, a, 3, "from A")
    one_error(coral("push", repo=a), "non-fast-forward")
    ok(coral("push", "--force", repo=a))
    assert remote_main(remote_dir) == ca
    ok(coral("pull", "--force", repo=b))
    assert head(b) == ca


def test_remote_remove(coral, team) -> None:
    a, _, remote_dir = team
    with Repository(a) as r:
        assert r.remote_refs.list() != {}
    removed = ok(coral("remote", "remove", "origin", repo=a))
    assert "origin" in removed.stdout
    assert json.loads(ok(coral("remote", "list", "--json", repo=a)).stdout) == []
    with Repository(a) as r:
        assert r.remote_refs.list() == {}
    assert remote_main(remote_dir) is not None  # nothing on the remote was deleted
    one_error(coral("push", repo=a), "no remote", hint="coral remote add")
    one_error(coral("remote", "remove", "origin", repo=a), "origin", hint="coral remote list")


@pytest.mark.parametrize(
    "args",
    [
        ("push", "nosuch"),
        ("fetch", "nosuch"),
        ("pull", "nosuch"),
        ("sync", "nosuch"),
        ("remote", "show", "nosuch"),
        ("remote", "remove", "nosuch"),
    ],
)
def test_unknown_remote_name(coral, team, args) -> None:
    a, _, _ = team
    one_error(coral(*args, repo=a), "nosuch")


def test_remote_add_twice_and_bad_urls(coral, team) -> None:
    a, _, _ = team
    one_error(coral("remote", "add", "origin", "file:///elsewhere", repo=a), "already exists")
    one_error(coral("remote", "add", "x", "ftp://host/path", repo=a), "unsupported")
    secret = coral("remote", "add", "creds", "minio://KEYID:s3cretpass@localhost:9000/b", repo=a)
    ok(secret)
    assert "s3cretpass" not in secret.output
    assert "s3cretpass" not in (a / ".coral" / "remotes.json").read_text()
    assert "s3cretpass" not in ok(coral("remote", "list", repo=a)).output


def test_clone_of_an_empty_folder_is_a_clear_error(coral, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    target = tmp_path / "C"
    one_error(coral("clone", file_url(empty), str(target)), "no Coral repository")
    assert not (target / ".coral").exists()


def test_clone_of_a_folder_that_is_not_a_remote(coral, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8\xff")
    target = tmp_path / "C"
    one_error(coral("clone", file_url(folder), str(target)), "not a Coral remote")
    assert not (target / ".coral").exists()


def test_fetch_from_a_tampered_remote_is_one_error(coral, team) -> None:
    a, b, remote_dir = team
    c2 = commit_checkpoint(coral, a, 2, "second")
    ok(coral("push", repo=a))
    remote = open_remote(remote_dir)
    with Repository(a) as r:
        chunk = r.store.manifest(r.get_tree(c2).entries["encoder"].tensor_id).chunks[0]
    loc = remote.layout.refresh_index()[chunk]
    pack = remote_dir / "packs" / f"{loc.pack_id}.pack"
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0x20
    pack.write_bytes(bytes(data))
    before = head(b)
    one_error(coral("pull", repo=b), "corrupt")
    assert head(b) == before
    with Repository(b) as r:
        assert r.resolve_ref("origin/main") == before
