"""`repair`: rebuild a damaged or missing repository database (`coral fsck --repair`).

Works where `Repository(path)` cannot open (it needs a readable database): it finds `.coral`
by its objects, takes the repository lock exclusively, and checks the database (`diagnose`:
the file, SQLite's integrity check, the tables, refs naming existing commits). When something
is wrong it builds a new database beside the old one from what can be read of it
(`db_salvage.py`), the reflog and the objects (`db_rebuild.py`), then moves the old file aside
as `coral.db.damaged-<timestamp>` (never deleting it) and puts the new one in its place.
Objects are never touched. The returned `RepairReport` says what was found and recovered.
"""

from __future__ import annotations

import os
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from coral.errors import DatabaseDamagedError, NotARepositoryError
from coral.storage.backend import fsync_dir
from coral.storage.pack_store import PackStore
from coral.version_control.database import Database
from coral.version_control.db_errors import damage_reason
from coral.version_control.db_rebuild import Rebuilt, RecoveredRef, copy_salvage, rebuild_refs
from coral.version_control.db_salvage import Salvage, salvage
from coral.version_control.locking import RepositoryLock
from coral.version_control.objects import COMMIT, TAG
from coral.version_control.refs import RefStore
from coral.version_control.repo_config import CORAL_DIR, DB_FILE, open_store, read_config

DAMAGED_SUFFIX = ".damaged-"
BUILDING_SUFFIX = ".rebuilding"
_SIDE_FILES = ("", "-wal", "-shm")


@dataclass
class RepairReport:
    """What `repair` found wrong with the database and what the rebuilt one holds."""

    database: Path
    problems: list[str] = field(default_factory=list)  # empty: nothing needed repair
    moved_to: Path | None = None  # where the damaged file went
    salvaged_from: Path | None = None
    tables: int = 0  # tables read from the damaged file
    rows: int = 0  # rows copied
    lost_rows: int = 0  # rows (or stretches of them) that could not be read
    branches: list[RecoveredRef] = field(default_factory=list)
    tags: list[RecoveredRef] = field(default_factory=list)
    head: str = ""
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        return bool(self.problems)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("database", "moved_to", "salvaged_from"):
            out[key] = None if out[key] is None else str(out[key])
        return out

    def __str__(self) -> str:
        if not self.problems:
            return f"database {self.database}: ok, nothing to repair"
        lines = [f"database {self.database}: {p}" for p in self.problems]
        if self.moved_to is not None:
            lines.append(f"moved the damaged file to {self.moved_to}")
        if self.salvaged_from is not None:
            lines.append(
                f"read {self.rows} rows of {self.tables} tables from {self.salvaged_from}"
                + (f" ({self.lost_rows} unreadable)" if self.lost_rows else "")
            )
        lines += [f"branch {b}" for b in self.branches] or ["no branch could be recovered"]
        lines += [f"tag {t}" for t in self.tags]
        lines.append(f"HEAD: {self.head}")
        lines += [f"dropped: {d}" for d in self.dropped]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def find_coral_dir(start: Path | str) -> Path:
    """The `.coral` folder of the repository at `start` or a parent, found by its objects or
    settings (its database may be missing)."""
    here = Path(start).expanduser().absolute()
    if here.name == CORAL_DIR and here.is_dir():
        return here
    for candidate in (here, *here.parents):
        coral = candidate / CORAL_DIR
        if any((coral / n).exists() for n in ("objects", "config.toml", DB_FILE)):
            return coral
    raise NotARepositoryError(f"not a Coral repository (or any parent up to /): {here}")


def repair(path: Path | str = ".") -> RepairReport:
    """Check the repository database at `path` and rebuild it when it is damaged or missing."""
    coral_dir = find_coral_dir(path)
    db_path = coral_dir / DB_FILE
    config = read_config(coral_dir / "config.toml")
    store = open_store(coral_dir / "objects", config)
    try:
        with RepositoryLock(coral_dir / "lock").exclusive():
            report = RepairReport(db_path, diagnose(db_path, store))
            if report.problems:
                _rebuild(report, store, _default_branch(config))
            return report
    finally:
        store.close()


def diagnose(db_path: Path, store: PackStore) -> list[str]:
    """What is wrong with the database at `db_path` (empty when nothing is)."""
    if not db_path.is_file():
        return ["the file is missing"]
    db = Database(db_path)
    problems: list[str] = []
    try:
        db.check_format()
        rows = db.query("PRAGMA integrity_check(20)")
        problems += [f"integrity check: {r[0]}" for r in rows if str(r[0]) != "ok"]
        refs = RefStore(db)
        for ref, cid in sorted(refs.all_ref_targets().items()):
            if not store.has_blob(COMMIT, cid):
                problems.append(f"{ref} points to missing commit {cid[:10]}")
        problems += [
            f"refs/tags/{t.name}: tag object missing"
            for t in refs.list_tags()
            if not t.tag_id or not store.has_blob(TAG, t.tag_id)
        ]
        head = refs.head()
        if head.branch is None and head.commit and not store.has_blob(COMMIT, head.commit):
            problems.append(f"HEAD points to missing commit {head.commit[:10]}")
        if head.branch is not None and head.commit is None and refs.reflog(head.branch, 1):
            problems.append(f"HEAD names branch {head.branch!r}, which is gone")
        if any(
            (old and not store.has_blob(COMMIT, old)) or (new and not store.has_blob(COMMIT, new))
            for old, new in db.query("SELECT old_id, new_id FROM reflog")
        ):
            problems.append("the reflog names missing commits")
    except DatabaseDamagedError as exc:
        problems.append(damage_reason(exc))
    except ValueError as exc:  # a row's text is damaged (JSON metadata, ...)
        problems.append(f"a row cannot be decoded: {exc}")
    finally:
        db.close()
    return problems


def _default_branch(config: dict[str, Any]) -> str:
    core = config.get("core", {})
    name = core.get("default_branch") if isinstance(core, dict) else None
    return name if isinstance(name, str) and name else "main"


def _rebuild(report: RepairReport, store: PackStore, default_branch: str) -> None:
    db_path = report.database
    source = db_path if db_path.is_file() else _newest_damaged(db_path)
    found = salvage(source) if source is not None else Salvage(notes=["no database to read"])
    if source is not None:
        report.salvaged_from = source
    report.tables = len(found.tables)
    report.notes += found.notes
    building = db_path.with_name(db_path.name + BUILDING_SUFFIX)
    _remove(building)
    rebuilt = Rebuilt()
    db = Database(building)
    try:
        db.create(default_branch)
        copy_salvage(db, found, rebuilt)
        rebuild_refs(db, store, default_branch, rebuilt)
        db.close()
        _fsync(building)
        if db_path.is_file():
            report.moved_to = _move_aside(db_path)
        os.replace(building, db_path)
        fsync_dir(db_path.parent)
    except BaseException:
        db.close()
        _remove(building)
        raise
    report.rows = sum(rebuilt.rows.values())
    report.lost_rows = sum(t.lost for t in found.tables.values())
    report.branches, report.tags, report.head = rebuilt.branches, rebuilt.tags, rebuilt.head
    report.dropped, report.notes = rebuilt.dropped, report.notes + rebuilt.notes


def _newest_damaged(db_path: Path) -> Path | None:
    """The newest copy moved aside by an earlier repair (one killed before it finished)."""
    copies = [
        p
        for p in db_path.parent.glob(f"{db_path.name}{DAMAGED_SUFFIX}*")
        if not p.name.endswith(("-wal", "-shm"))
    ]
    return max(copies, key=lambda p: p.stat().st_mtime, default=None)


def _move_aside(db_path: Path) -> Path:
    """Rename the database (and its -wal / -shm) to `coral.db.damaged-<timestamp>`."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = db_path.with_name(f"{db_path.name}{DAMAGED_SUFFIX}{stamp}")
    n = 1
    while any(Path(f"{target}{s}").exists() for s in _SIDE_FILES):
        target = db_path.with_name(f"{db_path.name}{DAMAGED_SUFFIX}{stamp}-{n}")
        n += 1
    for side in ("-wal", "-shm", ""):  # the main file last: until then nothing is lost
        src = Path(f"{db_path}{side}")
        if src.exists():
            os.replace(src, Path(f"{target}{side}"))
    return target


def _remove(path: Path) -> None:
    for side in _SIDE_FILES:
        with suppress(FileNotFoundError):
            Path(f"{path}{side}").unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
