"""Messages more than one screen of the browser sends or handles."""

from __future__ import annotations

from textual.message import Message


class RepositoryChanged(Message):
    """Refs, HEAD or the staging area changed (a commit, a checkout, staging): whatever shows
    them reads them again."""
