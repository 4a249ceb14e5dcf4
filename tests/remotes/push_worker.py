"""Pushes a repository to a remote, reporting its progress, for the SIGKILL test.

    python -m tests.remotes.push_worker REPO URL

Prints `READY` just before the push, `PROGRESS <phase> <done> <total>` after each uploaded
pack, and `DONE <json>` when the push returned. test_push_pull.py kills it at random moments.
"""

from __future__ import annotations

import json
import sys

from coral.remotes.remote import Remote, RemoteConfig
from coral.version_control.repository import Repository


def main() -> None:
    path, url = sys.argv[1], sys.argv[2]
    with Repository(path) as repo:
        remote = Remote.from_config(RemoteConfig.from_url("origin", url))
        print("READY", flush=True)

        def progress(phase: str, done: int, total: int) -> None:
            print(f"PROGRESS {phase} {done} {total}", flush=True)

        result = remote.push(repo, progress=progress)
        summary = {"bytes": result.bytes_transferred, "errors": result.errors}
        print(f"DONE {json.dumps(summary)}", flush=True)


if __name__ == "__main__":
    main()
