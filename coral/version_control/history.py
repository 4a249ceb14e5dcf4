"""Walking the commit graph: history order, ancestry tests and merge bases."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from coral.version_control.objects import Commit

ReadCommit = Callable[[str], Commit]


def iter_history(
    read: ReadCommit, starts: Iterable[str], first_parent: bool = False
) -> Iterator[Commit]:
    """Commits reachable from `starts`, newest first (by timestamp; a child before its parents
    whenever clocks agree), each once."""
    seen: set[str] = set()
    heap: list[tuple[float, int, str]] = []
    counter = 0
    for s in starts:
        if s and s not in seen:
            seen.add(s)
            c = read(s)
            heapq.heappush(heap, (-c.timestamp, counter, s))
            counter += 1
    while heap:
        _, _, cid = heapq.heappop(heap)
        commit = read(cid)
        yield commit
        parents = commit.parent_hashes[:1] if first_parent else commit.parent_hashes
        for p in parents:
            if p not in seen:
                seen.add(p)
                pc = read(p)
                # never list a parent before its child, even with a skewed clock
                heapq.heappush(heap, (-min(pc.timestamp, commit.timestamp), counter, p))
                counter += 1


def ancestors(read: ReadCommit, start: str) -> set[str]:
    """`start` and every commit reachable from it."""
    out: set[str] = set()
    queue = deque([start])
    while queue:
        cid = queue.popleft()
        if cid in out:
            continue
        out.add(cid)
        queue.extend(read(cid).parent_hashes)
    return out


def is_ancestor(read: ReadCommit, ancestor: str, descendant: str) -> bool:
    """Whether `ancestor` is reachable from `descendant` (a commit is its own ancestor)."""
    if ancestor == descendant:
        return True
    seen: set[str] = set()
    queue = deque([descendant])
    while queue:
        cid = queue.popleft()
        if cid in seen:
            continue
        seen.add(cid)
        if cid == ancestor:
            return True
        for p in read(cid).parent_hashes:
            if p not in seen:
                queue.append(p)
    return False


def merge_bases(read: ReadCommit, a: str, b: str) -> list[str]:
    """The best common ancestors of `a` and `b` (none of them an ancestor of another)."""
    anc_a = ancestors(read, a)
    common: list[str] = []
    seen: set[str] = set()
    queue = deque([b])
    while queue:
        cid = queue.popleft()
        if cid in seen:
            continue
        seen.add(cid)
        if cid in anc_a:
            common.append(cid)
            continue  # its ancestors are common too, but never better
        queue.extend(read(cid).parent_hashes)
    best = [c for c in common if not any(o != c and is_ancestor(read, c, o) for o in common)]
    return sorted(best, key=lambda c: -read(c).timestamp)


def merge_base(read: ReadCommit, a: str, b: str) -> str | None:
    """One best common ancestor (the most recent when there are several), or None."""
    bases = merge_bases(read, a, b)
    return bases[0] if bases else None
