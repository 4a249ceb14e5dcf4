"""A damaged repository database (`.coral/coral.db`): truncated, header zeroed, not a database,
empty, a table dropped, bytes flipped, missing. Every command then either works or raises a
`DatabaseDamagedError` naming the file with the `coral fsck --repair` hint (API and CLI, never a
raw SQLite error or "bug in Coral"); `coral fsck` reports the damage; `coral fsck --repair`
rebuilds a database that passes fsck, keeps the damaged file aside byte for byte, leaves every
object untouched and loses no head of history.

Cases at CORAL_FAULT_SCALE=1: 8 damage kinds x (API, CLI, repair), 4 fsck/repair cases, and 12
random damages (flips, zeroed pages, truncations, dropped tables): 12 * scale in a long run.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.errors import CoralError, DatabaseDamagedError
from coral.version_control.objects import COMMIT
from coral.version_control.repair import repair
from coral.version_control.repository import Repository
from tests.faults.scale import trials

NOTES = "CREATE TABLE IF NOT EXISTS fault_notes (k TEXT PRIMARY KEY, v TEXT NOT NULL);"


@dataclass
class Template:
    """A repository: main (3 commits, the newest), dev (diverged), tag v1, a deleted branch, and
    a table of another component."""

    path: Path
    tips: dict[str, str]
    tag: str


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((8, 4)).astype(np.float32), "b": np.full(4, seed, np.int32)}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("db") / "repo"
    with Repository.init(path) as repo:
        repo.add_all_weights(_weights(0))
        repo.commit("c0")
        repo.create_branch("dev")
        repo.create_branch("old")
        repo.checkout("old")
        repo.add_all_weights(_weights(9))
        repo.commit("abandoned")
        repo.checkout("dev")
        repo.add_all_weights(_weights(1))
        dev = repo.commit("dev work")
        repo.checkout("main")
        repo.delete_branch("old", force=True)
        repo.add_all_weights(_weights(2))
        tagged = repo.commit("c1")
        repo.tag_version("v1", description="tagged")
        repo.add_all_weights(_weights(3))
        main = repo.commit("c2")
        repo.database.ensure_component("fault_notes", 1, NOTES)
        with repo.database.transaction() as tx:
            tx.executemany("INSERT INTO fault_notes VALUES (?, ?)", [("a", "1"), ("b", "2")])
    return Template(path, {"main": main, "dev": dev}, tagged)


def _copy(template: Template, tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    shutil.copytree(template.path, path)
    return path


def _db(path: Path) -> Path:
    return path / ".coral" / "coral.db"


def _objects(path: Path) -> dict[str, str]:
    """Every file of the object store by relative path, with a digest of its bytes."""
    root = path / ".coral" / "objects"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent.name != "tmp"
    }


def _drop(table: str) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        with sqlite3.connect(db) as conn:
            conn.execute(f"DROP TABLE {table}")
        conn.close()

    return damage


def _rewrite(change: Callable[[bytearray], bytes]) -> Callable[[Path], None]:
    def damage(db: Path) -> None:
        db.write_bytes(change(bytearray(db.read_bytes())))

    return damage


def _zero_header(data: bytearray) -> bytes:
    data[:100] = bytes(100)
    return bytes(data)


def _flip_page_type(table: str) -> Callable[[Path], None]:
    """Flip one bit of the b-tree page type of `table`'s root page."""

    def damage(db: Path) -> None:
        with sqlite3.connect(db) as conn:
            (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,))
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.close()
        data = bytearray(db.read_bytes())
        data[(root[0] - 1) * page_size] ^= 0x01
        db.write_bytes(bytes(data))

    return damage


DAMAGE: dict[str, Callable[[Path], None]] = {
    "flipped-byte": _flip_page_type("branches"),
    "truncated": _rewrite(lambda d: bytes(d[: len(d) * 2 // 5])),
    "zeroed-header": _rewrite(_zero_header),
    "not-a-database": _rewrite(lambda d: b"these are not the weights you are looking for\n" * 64),
    "empty": _rewrite(lambda d: b""),
    "dropped-branches": _drop("branches"),
    "dropped-reflog": _drop("reflog"),
    "dropped-component-table": _drop("staged_files"),
}
# damage done outside SQLite: the file moved aside must be the damaged bytes, unchanged
BYTES_KEPT = {"flipped-byte", "truncated", "zeroed-header", "not-a-database", "empty"}


def _assert_clear(exc: CoralError, db: Path) -> None:
    assert isinstance(exc, DatabaseDamagedError), repr(exc)
    assert str(db) in exc.message
    assert exc.hint is not None and "coral fsck --repair" in exc.hint


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_a_clear_error_from_the_api(template: Template, tmp_path: Path, kind: str):
    path = _copy(template, tmp_path)
    DAMAGE[kind](_db(path))
    with pytest.raises(CoralError) as caught, Repository(path) as repo:
        repo.log()
        repo.status()
        repo.get_all_weights("HEAD")
    _assert_clear(caught.value, _db(path))


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_a_clear_error_from_the_cli(template: Template, tmp_path: Path, kind: str):
    path = _copy(template, tmp_path)
    DAMAGE[kind](_db(path))
    runner = CliRunner()
    for command in (["log"], ["status"], ["branch"]):
        result = runner.invoke(app, ["-C", str(path), *command])
        assert result.exit_code == 1, (command, result.output)
        assert "error:" in result.output and str(_db(path)) in result.output
        assert "coral fsck --repair" in result.output
        assert "bug in Coral" not in result.output and "Traceback" not in result.output
    fsck = runner.invoke(app, ["-C", str(path), "fsck"])
    assert fsck.exit_code == 1 and "database coral.db" in fsck.output, fsck.output
    assert "coral fsck --repair" in fsck.output


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_repair_rebuilds_the_database(template: Template, tmp_path: Path, kind: str):
    path = _copy(template, tmp_path)
    objects = _objects(path)
    DAMAGE[kind](_db(path))
    damaged = _db(path).read_bytes()
    report = repair(path)
    assert report.repaired and report.problems
    assert report.moved_to is not None and report.moved_to.name.startswith("coral.db.damaged-")
    if kind in BYTES_KEPT:
        assert report.moved_to.read_bytes() == damaged
    assert _objects(path) == objects  # objects are never touched
    _assert_history_kept(template, path)
    with Repository(path) as repo:
        branches = {b.name: b.commit_hash for b in repo.refs.list_branches()}
        if kind.startswith(("dropped", "flipped")) or kind == "zeroed-header":  # rows read back
            named = {n: c for n, c in branches.items() if not n.startswith("recovered-")}
            assert named == template.tips
            if kind != "dropped-reflog":  # the reflog says the deleted branch was deleted
                assert named == branches
            assert repo.database.query("SELECT k, v FROM fault_notes ORDER BY k") == [
                ("a", "1"),
                ("b", "2"),
            ]
        assert [t.commit_hash for t in repo.refs.list_tags()] == [template.tag]
        assert repo.refs.head().branch == "main"


def _assert_history_kept(template: Template, path: Path) -> None:
    """fsck is clean, HEAD is on main at its old tip and every branch tip is still reachable."""
    with Repository(path) as repo:
        report = repo.fsck()
        assert report.ok, str(report)
        assert repo.refs.head().branch == "main"
        assert repo.refs.head().commit == template.tips["main"]
        reachable = set()
        for branch in repo.refs.list_branches():
            reachable |= {c.commit_hash for c in repo.log(branch=branch.name)}
        assert set(template.tips.values()) <= reachable
        assert repo.get_all_weights("HEAD")["b"].data.tolist() == [3, 3, 3, 3]


def test_repair_without_a_database_file(template: Template, tmp_path: Path):
    path = _copy(template, tmp_path)
    _db(path).unlink()
    result = CliRunner().invoke(app, ["-C", str(path), "fsck"])
    assert result.exit_code == 1 and "the database is missing" in result.output
    result = CliRunner().invoke(app, ["-C", str(path), "fsck", "--repair"])
    assert result.exit_code == 0, result.output
    assert "branch main ->" in result.output and "recovered-" in result.output
    _assert_history_kept(template, path)


def test_repair_of_a_healthy_database_changes_nothing(template: Template, tmp_path: Path):
    path = _copy(template, tmp_path)
    before = _db(path).read_bytes()
    report = repair(path)
    assert not report.repaired and "nothing to repair" in str(report)
    assert _db(path).read_bytes() == before
    assert not list(_db(path).parent.glob("coral.db.damaged-*"))


def test_fsck_finds_a_damaged_index_and_repair_rebuilds_it(template: Template, tmp_path: Path):
    """A damaged index page: the repository still opens; integrity_check finds it."""
    path = _copy(template, tmp_path)
    with Repository(path) as repo:
        reflog = [e.message for e in repo.refs.reflog("main")]
    with sqlite3.connect(_db(path)) as conn:
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='reflog_by_ref'")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(_db(path).read_bytes())
    end = root[0] * page_size
    data[end - 200 : end] = b"\x55" * 200
    _db(path).write_bytes(bytes(data))
    with Repository(path) as repo:
        assert repo.log()[0].commit_hash == template.tips["main"]
        report = repo.fsck()
        assert not report.ok and any(p.kind == "database" for p in report.problems)
    result = CliRunner().invoke(app, ["-C", str(path), "fsck"])
    assert result.exit_code == 1 and "coral fsck --repair" in result.output
    assert repair(path).repaired
    _assert_history_kept(template, path)
    with Repository(path) as repo:
        assert [e.message for e in repo.refs.reflog("main")][: len(reflog)] == reflog


def test_refs_to_missing_commits_are_found_and_repaired(template: Template, tmp_path: Path):
    path = _copy(template, tmp_path)
    with sqlite3.connect(_db(path)) as conn:
        conn.execute("UPDATE branches SET commit_id=? WHERE name='dev'", ("ab" * 32,))
        conn.execute("DELETE FROM branches WHERE name='main'")
    conn.close()
    with Repository(path) as repo:
        problems = [str(p) for p in repo.fsck().problems]
    assert any("refs/heads/dev" in p and "missing commit" in p for p in problems), problems
    assert any("HEAD names branch 'main'" in p for p in problems), problems
    result = CliRunner().invoke(app, ["-C", str(path), "fsck", "--repair"])
    assert result.exit_code == 0, result.output
    assert "dropped: branch 'dev'" in result.output
    _assert_history_kept(template, path)
    with Repository(path) as repo:
        assert repo.refs.branch_tip("dev") == template.tips["dev"]  # back from the reflog
        assert repo.refs.branch_tip("main") == template.tips["main"]


def _random_damage(db: Path, rnd: random.Random) -> str:
    data = bytearray(db.read_bytes())
    page = 4096
    kind = rnd.choice(["flip", "flip", "zero-page", "truncate", "drop"])
    if kind == "flip":
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(data))
            data[i] ^= 1 << rnd.randrange(8)
    elif kind == "zero-page":
        start = rnd.randrange(len(data) // page) * page
        data[start : start + page] = bytes(page)
    elif kind == "truncate":
        data = data[: rnd.randrange(len(data))]
    else:
        with sqlite3.connect(db) as conn:
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            names = [r[0] for r in tables]
            table = rnd.choice([n for n in names if not n.startswith("sqlite_")])
            conn.execute(f'DROP TABLE "{table}"')
        conn.close()
        return f"drop {table}"
    db.write_bytes(bytes(data))
    return kind


def test_random_damage_never_escapes_and_repair_keeps_history(template: Template, tmp_path: Path):
    objects = _objects(template.path)
    for trial in range(trials(12)):
        rnd = random.Random(1000 + trial)
        path = tmp_path / f"t{trial}"
        shutil.copytree(template.path, path)
        what = _random_damage(_db(path), rnd)
        try:
            with Repository(path) as repo:
                repo.log()
                repo.status()
                repo.refs.list_branches()
                repo.refs.list_tags()
                repo.get_all_weights("HEAD")
                repo.fsck()
        except CoralError:
            pass  # a clear error; anything else fails the test
        report = repair(path)
        assert _objects(path) == objects, what
        with Repository(path) as repo:
            assert repo.fsck().ok, (what, str(report))
            assert all(repo.store.has_blob(COMMIT, c) for c in template.tips.values())
            reachable = set()
            for branch in repo.refs.list_branches():
                reachable |= {c.commit_hash for c in repo.log(branch=branch.name)}
        assert set(template.tips.values()) <= reachable, (what, str(report))
        shutil.rmtree(path)
