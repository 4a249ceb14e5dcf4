"""Repository check: every object re-hashed, every reference resolvable.

Problems are (kind, id, path, reason): `kind` is an object kind ("tensor", "chunk", "commit",
"tree", "tag") or "ref" / "reflog" / "staging" / "database"; `id` the object id or ref name;
`path` the object's file for damaged objects, or where in the history a missing object is
referenced (`refs/heads/main`, `<commit>:<tensor name>`, ...).

The database is checked too: SQLite's `integrity_check` (`quick_check` with `full=False`), every
branch, tag and HEAD naming an existing commit, HEAD's branch not lost, staged rows naming
existing objects. `coral fsck --repair` (`repair.py`) rebuilds a damaged database.

A pruned commit whose tree or tensors gc deleted is expected, not damage: it is listed in
`FsckReport.info`, not in `problems`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from coral.errors import CoralError, CorruptObjectError, DatabaseDamagedError, ObjectNotFoundError
from coral.storage.base import CHUNK, TENSOR
from coral.version_control import pruning
from coral.version_control.db_errors import damage_reason
from coral.version_control.objects import COMMIT, FILE, TAG, TREE, Commit, Tag, Tree
from coral.version_control.progress import Phase, Progress
from coral.version_control.repo_protocol import CheckedRepository


class FsckProblem(NamedTuple):
    kind: str
    id: str
    path: str | None
    reason: str

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.kind} {self.id}{where}: {self.reason}"


@dataclass
class FsckReport:
    """Result of `Repository.fsck()`: `ok` when `problems` is empty."""

    problems: list[FsckProblem] = field(default_factory=list)
    warnings: list[FsckProblem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    info: list[FsckProblem] = field(default_factory=list)  # expected: pruned commits gc'd

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, object_id: str, path: str | None, reason: str) -> None:
        problem = FsckProblem(kind, object_id, path, reason)
        if problem not in self.problems:
            self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": dict(self.checked),
            "problems": [p._asdict() for p in self.problems],
            "warnings": [w._asdict() for w in self.warnings],
            "info": [i._asdict() for i in self.info],
        }

    def __str__(self) -> str:
        if self.ok:
            total = sum(self.checked.values())
            return (
                f"ok: {total} objects checked"
                + (f", {len(self.warnings)} warning(s)" if self.warnings else "")
                + (
                    f", {len(self.info)} expected absence(s): pruned, not fetched"
                    if self.info
                    else ""
                )
            )
        return "\n".join(str(p) for p in self.problems)


def check_repository(
    repo: CheckedRepository, *, full: bool = True, progress: Progress | None = None
) -> FsckReport:
    """Check the repository. `full=False` skips re-hashing every object (references only).
    `progress(phase, done, total)` is told how far it got."""
    report = FsckReport()
    checker = _Checker(repo, report, progress)
    checker.check_database(full)
    if full:
        checker.verify_all_objects()
    try:
        checker.check_refs()
        checker.check_staged_files()
        checker.walk_history()
    except DatabaseDamagedError as exc:  # found while reading refs: reported, not raised
        checker.database_problem(damage_reason(exc))
    except ValueError as exc:  # a row whose text is damaged (JSON metadata, ...)
        checker.database_problem(f"a row cannot be decoded: {exc}")
    checker.sort_broken_chains()
    return report


class _Checker:
    def __init__(
        self, repo: CheckedRepository, report: FsckReport, progress: Progress | None = None
    ) -> None:
        self.repo = repo
        self.progress = progress
        self.store = repo.store
        self.report = report
        self.bad: set[tuple[str, str]] = set()
        self.reachable_tensors: set[str] = set()
        self.promised: set[str] = set()  # tensors a partial clone has not fetched
        self.broken_chains: list[FsckProblem] = []

    def _file(self, kind: str, object_id: str) -> str | None:
        try:
            return self.store.where(kind, object_id)
        except CoralError:
            return None

    # -- the database ---------------------------------------------------------------------------
    def database_problem(self, reason: str) -> None:
        db = self.repo.database
        self.report.add("database", db.path.name, str(db.path), reason)

    def check_database(self, full: bool) -> None:
        """SQLite's own check of the file, and HEAD's branch not lost."""
        db = self.repo.database
        self.report.checked["database"] = 1
        try:
            rows = db.query(f"PRAGMA {'integrity_check' if full else 'quick_check'}(20)")
            findings = [str(r[0]) for r in rows if str(r[0]) != "ok"]
            head = self.repo.refs.head()
            if head.branch is not None and head.commit is None:
                last = self.repo.refs.reflog(head.branch, limit=1)
                if last and last[0].new:
                    findings.append(
                        f"HEAD names branch {head.branch!r}, which is gone (the reflog last "
                        f"saw it at {last[0].new[:10]})"
                    )
        except DatabaseDamagedError as exc:
            findings = [damage_reason(exc)]
        for finding in findings:
            self.database_problem(finding)

    def check_staged_files(self) -> None:
        """Every staged model file (shared area and sessions) names a stored blob."""
        for blob_id in sorted(self.repo.staging.roots()[1]):
            if not self.store.has_blob(FILE, blob_id):
                self.report.add("staging", blob_id, "staged model file", "blob is missing")

    # -- every object ---------------------------------------------------------------------------
    def verify_all_objects(self) -> None:
        kinds = self.store.kinds()
        for kind in [CHUNK, TENSOR] + [k for k in kinds if k not in (CHUNK, TENSOR)]:
            ids = list(self.store.iter_objects(kind))
            self.report.checked[kind] = len(ids)
            phase = Phase(self.progress, f"verifying {kind}s", len(ids))
            for oid in ids:
                self._verify(kind, oid)
                phase.advance()
            phase.finish()

    def _verify(self, kind: str, oid: str) -> None:
        if kind == TENSOR:
            missing = self._missing_chunks(oid)
            if missing:
                # reported by the history walk if a commit or the staging area needs it;
                # an unreachable tensor with missing chunks is only garbage (gc removes it)
                self.report.warnings.append(
                    FsckProblem(
                        kind,
                        oid,
                        self._file(kind, oid),
                        f"{len(missing)} chunk(s) missing (first: {missing[0]})",
                    )
                )
                self.bad.add((kind, oid))
                return
        try:
            self.store.verify(kind, oid)
        except CorruptObjectError as exc:
            self.bad.add((kind, oid))
            problem = FsckProblem(kind, oid, exc.path or self._file(kind, oid), exc.reason)
            if "delta reference is missing" in exc.reason and kind in (CHUNK, TENSOR):
                self.broken_chains.append(problem)  # garbage unless something live needs it
            else:
                self.report.add(*problem)
        except ObjectNotFoundError:
            pass  # removed while we listed (gc): not a problem
        except Exception as exc:  # an undecodable object must not stop the check
            self.bad.add((kind, oid))
            self.report.add(kind, oid, self._file(kind, oid), f"cannot be read: {exc}")
        if kind in (COMMIT, TREE, TAG) and (kind, oid) not in self.bad:
            decoder = {COMMIT: Commit.decode, TREE: Tree.decode, TAG: Tag.decode}[kind]
            try:
                decoder(self.store.get_blob(kind, oid), oid)
            except CorruptObjectError as exc:
                self.bad.add((kind, oid))
                self.report.add(kind, oid, self._file(kind, oid), exc.reason)
            except ObjectNotFoundError:
                pass  # removed while we listed (gc), as above: not a problem

    def sort_broken_chains(self) -> None:
        """A chunk whose delta base is gone is a problem when a reachable tensor needs it, and
        only a warning when it is garbage (a gc killed between two deletions leaves such)."""
        if not self.broken_chains:
            return
        live = self.store.live_chunks(self.reachable_tensors)
        for problem in self.broken_chains:
            if problem.id in live or problem.id in self.reachable_tensors:
                self.report.add(*problem)
            else:
                self.report.warnings.append(problem)

    def _missing_chunks(self, tensor_id: str) -> list[str]:
        try:
            deps = self.store.dependencies(TENSOR, tensor_id)
        except (CorruptObjectError, ObjectNotFoundError, ValueError):
            return []  # the manifest itself is bad: verify() reports it
        return [cid for _, cid in deps if not self.store.has_blob(CHUNK, cid)]

    # -- refs -----------------------------------------------------------------------------------
    def check_refs(self) -> None:
        repo = self.repo
        targets = repo.refs.all_ref_targets()
        self.report.checked["ref"] = len(targets)
        for ref, cid in targets.items():
            self._need_commit(cid, "ref", ref, ref)
        head = repo.refs.head()
        if head.commit is not None:
            self._need_commit(head.commit, "ref", "HEAD", "HEAD")
        for tag in repo.refs.list_tags():
            if not tag.tag_id or not self.store.has_blob(TAG, tag.tag_id):
                self.report.add(
                    "tag", tag.tag_id or "?", f"refs/tags/{tag.name}", "tag object is missing"
                )
                continue
            if (TAG, tag.tag_id) in self.bad:
                continue
            try:
                obj = Tag.decode(self.store.get_blob(TAG, tag.tag_id), tag.tag_id)
            except CorruptObjectError as exc:
                self.report.add("tag", tag.tag_id, f"refs/tags/{tag.name}", exc.reason)
                continue
            if obj.commit_hash != tag.commit_hash or obj.name != tag.name:
                self.report.add(
                    "ref",
                    f"refs/tags/{tag.name}",
                    None,
                    f"database says {tag.commit_hash[:10]}, tag object says {obj.commit_hash[:10]}",
                )
        for old, new in repo.database.query("SELECT old_id, new_id FROM reflog"):
            for cid in (old, new):
                if cid and not self.store.has_blob(COMMIT, cid):
                    self.report.add("reflog", cid, "reflog", "names a commit that is missing")
        for change in repo.staging.all_changes():  # the shared area's and every session's
            name = change.name
            if change.entry is not None and not self.store.exists(change.entry.tensor_id):
                self.report.add(
                    "staging", change.entry.tensor_id, f"staged:{name}", "staged tensor is missing"
                )
            elif change.entry is not None:
                self.reachable_tensors.add(change.entry.tensor_id)

    def _need_commit(self, cid: str, kind: str, name: str, path: str) -> bool:
        if not self.store.has_blob(COMMIT, cid):
            self.report.add(kind, name, path, f"points to missing commit {cid}")
            return False
        return True

    # -- history --------------------------------------------------------------------------------
    def walk_history(self) -> None:
        repo = self.repo
        starts = list(repo.refs.all_ref_targets().items())
        head = repo.refs.head().commit
        if head:
            starts.append(("HEAD", head))
        seen: set[str] = set()
        trees_done: set[str] = set()
        pruned = pruning.pruned(repo.database)
        stack = [(cid, ref) for ref, cid in starts]
        phase = Phase(self.progress, "checking history", len(self.store.list_blobs(COMMIT)))
        while stack:
            cid, via = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            phase.advance()
            if not self.store.has_blob(COMMIT, cid):
                self.report.add(COMMIT, cid, via, "commit is missing")
                continue
            if (COMMIT, cid) in self.bad:
                continue
            try:
                commit = repo.read_commit(cid)
            except CorruptObjectError as exc:
                self.report.add(COMMIT, cid, self._file(COMMIT, cid), exc.reason)
                continue
            stack.extend((p, f"{cid[:10]}^") for p in commit.parent_hashes)
            if cid in pruned and pruning.weights_collected(repo, cid):
                # gc took its weights, as pruning allows; a live commit sharing its tree or
                # tensors still has them checked (so this one does not mark the tree done)
                self.report.info.append(
                    FsckProblem(COMMIT, cid, via, "pruned; gc deleted its weights (expected)")
                )
                continue
            if commit.tree_id not in trees_done:
                trees_done.add(commit.tree_id)
                self._check_tree(commit.tree_id, cid)
        phase.finish()
        self.report.checked["reachable_commits"] = len(seen)
        for tid in self.reachable_tensors:
            if (TENSOR, tid) in self.bad:
                missing = self._missing_chunks(tid)
                if missing:
                    self.report.add(
                        TENSOR,
                        tid,
                        self._file(TENSOR, tid),
                        f"{len(missing)} chunk(s) missing (first: {missing[0]})",
                    )

    def _check_tree(self, tree_id: str, commit_id: str) -> None:
        if not self.store.has_blob(TREE, tree_id):
            self.report.add(TREE, tree_id, f"{commit_id[:10]}^{{tree}}", "tree is missing")
            return
        if (TREE, tree_id) in self.bad:
            return
        try:
            tree = self.repo.read_tree(tree_id)
        except CorruptObjectError as exc:
            self.report.add(TREE, tree_id, self._file(TREE, tree_id), exc.reason)
            return
        for path, file in tree.files.items():
            if not self.store.has_blob(FILE, file.blob_id):
                self.report.add(
                    FILE, file.blob_id, f"{commit_id[:10]}:{path}", "model file is missing"
                )
        for name, entry in tree.entries.items():
            tid = entry.tensor_id
            self.reachable_tensors.add(tid)
            if not self.store.exists(tid):
                promisor = self.store.promisor
                if promisor.configured:  # a partial clone's
                    if tid in self.promised:
                        continue
                    self.promised.add(tid)
                    self.report.info.append(
                        FsckProblem(
                            TENSOR,
                            tid,
                            f"{commit_id[:10]}:{name}",
                            f"not fetched yet (on {promisor.describe()}, read on demand)",
                        )
                    )
                    continue
                self.report.add(TENSOR, tid, f"{commit_id[:10]}:{name}", "tensor is missing")
                continue
            if (TENSOR, tid) not in self.bad:
                try:
                    m = self.store.manifest(tid)
                except (CorruptObjectError, ValueError):
                    continue
                if tuple(m.shape) != entry.shape or m.dtype != entry.dtype:
                    self.report.add(
                        TREE,
                        tree_id,
                        f"{commit_id[:10]}:{name}",
                        f"entry says {entry.dtype}{list(entry.shape)}, tensor is "
                        f"{m.dtype}{list(m.shape)}",
                    )
