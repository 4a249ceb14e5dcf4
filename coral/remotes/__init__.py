"""Remotes (chapter 8.3): push, fetch, pull and sync repositories over S3, GCS, Azure, folders."""

from coral.remotes.config import RemoteConfig, RemoteManager
from coral.remotes.remote import PullResult, PushResult, Remote

__all__ = ["PullResult", "PushResult", "Remote", "RemoteConfig", "RemoteManager"]
