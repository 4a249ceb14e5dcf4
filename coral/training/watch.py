"""`CheckpointWatcher`: commit each new checkpoint a training framework writes into a folder.

It polls (no extra dependency): a file or checkpoint folder counts as written once its size and
modification time have not changed for `debounce_ms` and it loads; a half-written file that fails
to load is retried on the next change. Rules come from `.coral/config.toml`:

    [watch]
    patterns = ["*.safetensors", "*.pt", "checkpoint-*"]
    every = 1                        # commit every N-th new checkpoint
    message = "{filename} step {n}"  # {n}: the last number in the file name (else the count)
    debounce_ms = 1000
    interval = 0.5                   # seconds between polls
    branch = "main"                  # default: the branch HEAD is on

Each checkpoint is committed as a complete state onto the branch (the staging area is left alone)
and recorded in the branch's checkpoint index like a `CheckpointManager` save (step: {n}, reason
"watch"), so `coral checkpoints` lists it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coral.errors import CoralError, NothingToCommitError
from coral.training.checkpoint_index import CheckpointIndex, CheckpointInfo
from coral.training.commit import branch_for, commit_weights
from coral.training.watch_rules import WatchConfigError as WatchConfigError
from coral.training.watch_rules import WatchRules

_NUMBER = re.compile(r"(\d+)")

if TYPE_CHECKING:
    from coral.version_control.repository import Repository


@dataclass
class WatchEvent:
    """What happened to one checkpoint: committed, skipped (every-N / unchanged) or failed."""

    path: Path
    action: str  # "committed", "skipped", "unchanged", "failed"
    n: int
    commit: str | None = None
    tensors: int = 0
    error: str | None = None


@dataclass
class WatchSummary:
    committed: int = 0
    skipped: int = 0
    failed: int = 0
    seen: int = 0
    commits: list[str] = field(default_factory=list)

    def line(self, directory: Path | str) -> str:
        return (
            f"watched {directory}: {self.seen} checkpoints seen, {self.committed} committed, "
            f"{self.skipped} skipped, {self.failed} failed"
        )


def _signature(path: Path) -> tuple | None:
    """What changes while a checkpoint is written: size and mtime (of every file, for folders)."""
    try:
        if path.is_dir():
            parts = []
            for root, _, files in os.walk(path):
                for f in sorted(files):
                    st = os.stat(os.path.join(root, f))
                    parts.append(
                        (os.path.relpath(os.path.join(root, f), path), st.st_size, st.st_mtime_ns)
                    )
            return tuple(sorted(parts))
        st = path.stat()
        return (st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        return None


def step_number(filename: str, default: int) -> int:
    """The last number in a checkpoint's name (`checkpoint-500` -> 500), else `default`."""
    stem = filename
    for suffix in (".safetensors.index.json", ".index"):
        stem = stem.removesuffix(suffix)
    stem = Path(stem).stem if "." in stem else stem
    found = _NUMBER.findall(stem)
    return int(found[-1]) if found else default


@dataclass
class _Candidate:
    signature: tuple
    stable_since: float
    failures: int = 0


class CheckpointWatcher:
    """Polls `directory` and commits new checkpoints by `rules`.

    `loader(path)` reads one checkpoint's weights: `coral.integrations.formats.load_weights`
    for every format Coral reads (passed in: training imports nothing above itself)."""

    def __init__(
        self,
        repo: Repository,
        directory: str | os.PathLike[str],
        rules: WatchRules | None = None,
        *,
        loader: Callable[[Path], Mapping[str, Any]],
        on_event: Callable[[WatchEvent], None] | None = None,
    ) -> None:
        self.repo = repo
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise CoralError(
                f"{self.directory} is not a folder",
                hint="pass the folder the training run writes into",
            )
        self.rules = rules or WatchRules()
        self.branch = branch_for(repo, self.rules.branch)
        self.index = CheckpointIndex(repo)
        self.loader = loader
        self.on_event = on_event
        self.summary = WatchSummary()
        self._pending: dict[Path, _Candidate] = {}
        self._done: dict[Path, tuple] = {}  # path -> signature it was handled at
        self._count = 0
        if not self.rules.include_existing:
            for p in self._candidates():
                sig = _signature(p)
                if sig is not None:
                    self._done[p] = sig

    def _candidates(self) -> list[Path]:
        out = []
        try:
            entries = sorted(self.directory.iterdir())
        except FileNotFoundError:
            return []
        for p in entries:
            if p.name.startswith(".") or p.name.endswith((".tmp", ".part", ".partial")):
                continue
            if any(fnmatch.fnmatch(p.name, pat) for pat in self.rules.patterns):
                out.append(p)
        return out

    def poll(self, now: float | None = None) -> list[WatchEvent]:
        """One scan: handle every checkpoint that has become complete; returns what happened."""
        now = time.monotonic() if now is None else now
        events: list[WatchEvent] = []
        debounce = self.rules.debounce_ms / 1000.0
        for path in self._candidates():
            sig = _signature(path)
            if sig is None or self._done.get(path) == sig:
                self._pending.pop(path, None)
                continue
            cand = self._pending.get(path)
            if cand is None or cand.signature != sig:
                self._pending[path] = _Candidate(sig, now)  # (re)written: start the debounce anew
                continue
            if now - cand.stable_since < debounce:
                continue
            event = self._handle(path, sig, cand, now)
            if event is not None:
                events.append(event)
                if self.on_event is not None:
                    self.on_event(event)
        return events

    def _handle(self, path: Path, sig: tuple, cand: _Candidate, now: float) -> WatchEvent | None:
        try:
            weights = self.loader(path)
        except Exception as exc:  # half-written or not a checkpoint
            cand.failures += 1
            cand.stable_since = now  # give the writer another debounce period
            if cand.failures < 3:
                return None
            self._done[path] = sig
            self._pending.pop(path, None)
            self.summary.failed += 1
            return WatchEvent(path, "failed", self._count, error=f"{type(exc).__name__}: {exc}")
        self._done[path] = sig
        self._pending.pop(path, None)
        self._count += 1
        self.summary.seen += 1
        n = step_number(path.name, self._count)
        if self._count % self.rules.every != 0:
            self.summary.skipped += 1
            return WatchEvent(path, "skipped", n, tensors=len(weights))
        message = self.rules.message.format_map(
            _Fields(filename=path.name, n=n, step=n, count=self._count, path=str(path))
        )
        metadata = {"watch": {"source": str(path), "n": n, "count": self._count}}
        try:
            commit = commit_weights(
                self.repo, weights, message, branch=self.branch, metadata=metadata, if_changed=True
            )
        except NothingToCommitError:
            self.summary.skipped += 1
            return WatchEvent(path, "unchanged", n, tensors=len(weights))
        self.index.record(
            CheckpointInfo(commit, self.branch, step=n, reason="watch", created_at=time.time())
        )
        self.summary.committed += 1
        self.summary.commits.append(commit)
        return WatchEvent(path, "committed", n, commit=commit, tensors=len(weights))

    def run(
        self, stop: threading.Event | None = None, max_commits: int | None = None
    ) -> WatchSummary:
        """Poll until `stop` is set (or KeyboardInterrupt, or `max_commits` commits)."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                self.poll()
                if max_commits is not None and self.summary.committed >= max_commits:
                    break
                stop.wait(self.rules.interval)
        except KeyboardInterrupt:
            pass
        return self.summary


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
