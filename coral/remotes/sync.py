"""`sync_repositories`: push, pull or both in one call (chapter 8.3)."""

from __future__ import annotations

from typing import Any

from coral.remotes.remote import Remote

DIRECTIONS = ("push", "pull", "both")


def sync_repositories(
    local_store: Any, remote: Remote, direction: str = "both", force: bool = False
) -> dict[str, Any]:
    """Pull, then push (for "both"); returns {"push": PushResult|None, "pull": PullResult|None}."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    stats: dict[str, Any] = {"push": None, "pull": None}
    if direction == "pull" or (direction == "both" and remote.layout.read_format() is not None):
        stats["pull"] = remote.pull(local_store, force=force)
    if direction in ("push", "both"):
        stats["push"] = remote.push(local_store, force=force)
    return stats
