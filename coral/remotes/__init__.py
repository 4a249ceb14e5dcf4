"""Remotes (chapter 8.3): push, fetch, pull and sync repositories over S3, GCS, Azure, folders."""

from coral.remotes.config import RemoteConfig
from coral.remotes.remote import PullResult, PushResult, Remote, RemoteManager

__all__ = ["PullResult", "PushResult", "Remote", "RemoteConfig", "RemoteManager"]
