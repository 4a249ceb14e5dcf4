"""A small Hugging Face Hub-compatible HTTP server for tests, on 127.0.0.1.

No real Hub can be reached from the test machines, so the tests talk to this server through the
real `huggingface_hub` client (`HfApi(endpoint=...)`). It implements only the routes that
`create_repo`, `upload_folder` / `create_commit`, `model_info`, `list_repo_files` and
`hf_hub_download` call, with the same payloads and error headers as the Hub:

    POST /api/repos/create                              {"name", "organization", "visibility"}
    POST /api/validate-yaml                             model-card metadata check
    POST /api/models/{ns}/{name}/preupload/{revision}   answers "regular" for every file
    POST /api/models/{ns}/{name}/commit/{revision}      NDJSON: header, file (base64), deletedFile
    GET  /api/models/{ns}/{name}[/revision/{revision}]  model_info (cardData parsed from README.md)
    GET  /api/models/{ns}/{name}/tree/{revision}[/dir] list_repo_tree / list_repo_files
    HEAD|GET /{ns}/{name}/resolve/{revision}/{path}     hf_hub_download
    GET  /api/whoami-v2

Every file is uploaded as a regular (base64, in-commit) blob: the client allows it, so neither
LFS nor Xet is needed. Reads take "main" or a commit oid (7+ characters) as the revision; writes
go to "main" only. Repositories live in memory (`HubServer.state`) for the server's lifetime.
Tokens are checked like the Hub does: a bad bearer token is a 401 with "Invalid credentials in
Authorization header"; writing without a token, or into a namespace the token's user does not
own, is refused.

Run by hand with `python -m tests.servers.hub_server --port 8999 --token hf_test=alice`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass
class HubCommit:
    oid: str
    title: str
    description: str
    author: str
    date: str
    files: dict[str, bytes]  # the whole tree at this commit


@dataclass
class HubRepo:
    repo_id: str
    owner: str
    private: bool
    created_at: str
    commits: list[HubCommit] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return self.commits[-1].oid

    @property
    def files(self) -> dict[str, bytes]:
        return self.commits[-1].files

    def at(self, revision: str) -> HubCommit | None:
        """The commit a revision names: "main", or a commit oid (7+ leading characters)."""
        if revision == "main":
            return self.commits[-1]
        if len(revision) >= 7:
            for commit in reversed(self.commits):
                if commit.oid.startswith(revision):
                    return commit
        return None


class HubState:
    """Repositories and users of the fake Hub; thread-safe."""

    def __init__(self, tokens: dict[str, str], orgs: dict[str, set[str]] | None = None) -> None:
        self.tokens = dict(tokens)  # token -> username
        self.orgs = {k: set(v) for k, v in (orgs or {}).items()}  # org -> members
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) seen, for assertions
        self.lock = threading.Lock()

    def can_write(self, user: str, namespace: str) -> bool:
        return namespace == user or user in self.orgs.get(namespace, set())


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def card_metadata(readme: bytes | None) -> dict[str, Any] | None:
    """The YAML front matter of a README.md, or None."""
    if not readme:
        return None
    text = readme.decode("utf-8", errors="replace")
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.DOTALL)
    if not match:
        return None
    data = yaml.safe_load(match.group(1))
    return data if isinstance(data, dict) else None


def validate_card_metadata(meta: dict[str, Any]) -> list[str]:
    """The checks the Hub applies to model-card metadata that a publisher can get wrong."""
    errors: list[str] = []
    for key in ("tags", "datasets", "language", "metrics"):
        value = meta.get(key)
        if value is not None and not (
            isinstance(value, str)
            or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            errors.append(f'"{key}" must be a string or an array of strings')
    for key in ("library_name", "pipeline_tag", "license"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    base = meta.get("base_model")
    if base is not None and not (
        isinstance(base, str) or (isinstance(base, list) and all(isinstance(v, str) for v in base))
    ):
        errors.append('"base_model" must be a string or an array of strings')
    index = meta.get("model-index")
    if index is not None:
        if not isinstance(index, list):
            return [*errors, '"model-index" must be an array']
        for i, model in enumerate(index):
            if not isinstance(model, dict) or not isinstance(model.get("name"), str):
                errors.append(f'"model-index[{i}].name" is required')
                continue
            for j, result in enumerate(model.get("results") or []):
                where = f"model-index[{i}].results[{j}]"
                task = result.get("task") if isinstance(result, dict) else None
                dataset = result.get("dataset") if isinstance(result, dict) else None
                metrics = result.get("metrics") if isinstance(result, dict) else None
                if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                    errors.append(f'"{where}.task.type" is required')
                if not isinstance(dataset, dict) or not all(
                    isinstance(dataset.get(k), str) for k in ("type", "name")
                ):
                    errors.append(f'"{where}.dataset.type" and ".name" are required')
                if not isinstance(metrics, list) or not metrics:
                    errors.append(f'"{where}.metrics" must be a non-empty array')
                    continue
                for k, metric in enumerate(metrics):
                    if (
                        not isinstance(metric, dict)
                        or not isinstance(metric.get("type"), str)
                        or "value" not in metric
                    ):
                        errors.append(f'"{where}.metrics[{k}]" needs "type" and "value"')
    return errors


class _HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HubHTTPServer

    # -- plumbing ----------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _user(self) -> tuple[bool, str | None]:
        """(credentials acceptable, username or None for anonymous)."""
        auth = self.headers.get("Authorization")
        if not auth:
            return True, None
        scheme, _, token = auth.partition(" ")
        user = self.state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return (user is not None), user

    def _authenticated(self, require: bool) -> tuple[bool, str | None]:
        ok, user = self._user()
        if not ok:
            self._error(401, "Invalid credentials in Authorization header")
            return False, None
        if require and user is None:
            self._error(401, "You must be authenticated to access this resource")
            return False, None
        return True, user

    def _readable_repo(self, repo_id: str, user: str | None) -> HubRepo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None or (
            repo.private and (user is None or not self.state.can_write(user, repo.owner))
        ):
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        return repo

    def _revision(
        self, repo: HubRepo, revision: str, branch_only: bool = False
    ) -> HubCommit | None:
        """The commit `revision` names (writes need the branch, "main"); None after a 404."""
        name = unquote(revision)
        commit = repo.at(name) if not branch_only or name == "main" else None
        if commit is None:
            self._error(404, f"Invalid rev id: {name}", "RevisionNotFound")
        return commit

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query)
        with self.state.lock:
            self.state.requests.append((method, path))
        try:
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo()
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml()
            if method == "GET" and path == "/api/whoami-v2":
                return self._whoami()
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", path)
            if m and method == "POST":
                return self._preupload(m.group(1), m.group(2))
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", path)
            if m and method == "POST":
                return self._commit(m.group(1), m.group(2))
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path)
            if m and method == "GET":
                return self._tree(
                    m.group(1),
                    m.group(2),
                    unquote((m.group(3) or "/")[1:]),
                    query.get("recursive", ["false"])[0].lower() == "true",
                )
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
            if m and method == "GET":
                return self._model_info(m.group(1), m.group(2) or "main")
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if m and method in ("GET", "HEAD"):
                return self._resolve(
                    m.group(1), m.group(2), unquote(m.group(3)), head=method == "HEAD"
                )
            self._error(404, f"no route for {method} {path}")
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            self._error(400, f"bad request: {exc}")

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    # -- endpoints ---------------------------------------------------------------------------
    def _whoami(self) -> None:
        ok, user = self._authenticated(require=True)
        if ok:
            orgs = [{"name": org} for org, members in self.state.orgs.items() if user in members]
            self._json(
                200, {"type": "user", "name": user, "orgs": orgs, "auth": {"type": "access_token"}}
            )

    def _create_repo(self) -> None:
        payload = json.loads(self._body() or b"{}")
        ok, user = self._authenticated(require=True)
        if not ok:
            return
        assert user is not None
        name = payload.get("name") or ""
        namespace = payload.get("organization") or user
        if payload.get("type", "model") != "model":
            return self._error(400, "only model repositories are served here")
        if not _NAME_RE.match(name) or not _NAME_RE.match(namespace):
            return self._error(400, f"invalid repository name {namespace}/{name}")
        if not self.state.can_write(user, namespace):
            return self._error(
                403,
                f'You don\'t have the rights to create a model under the namespace "{namespace}"',
            )
        repo_id = f"{namespace}/{name}"
        url = f"{self.server.base_url}/{repo_id}"
        with self.state.lock:
            if repo_id in self.state.repos:
                return self._json(
                    409,
                    {"error": "You already created this model repo", "url": url},
                    {"X-Error-Message": "You already created this model repo"},
                )
            repo = HubRepo(
                repo_id=repo_id,
                owner=namespace,
                private=payload.get("visibility") == "private",
                created_at=_now(),
            )
            gitattributes = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
            repo.commits.append(
                HubCommit(
                    hashlib.sha1(repo_id.encode() + b"initial").hexdigest(),
                    "initial commit",
                    "",
                    user,
                    _now(),
                    {".gitattributes": gitattributes},
                )
            )
            self.state.repos[repo_id] = repo
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self) -> None:
        ok, _ = self._authenticated(require=False)
        if not ok:
            return
        payload = json.loads(self._body() or b"{}")
        try:
            meta = card_metadata(str(payload.get("content", "")).encode())
        except yaml.YAMLError as exc:
            return self._json(400, {"errors": [{"message": f"YAML parse error: {exc}"}]})
        if meta is None:
            return self._json(
                200, {"warnings": [{"message": "empty or missing yaml metadata in repo card"}]}
            )
        errors = validate_card_metadata(meta)
        if errors:
            return self._json(400, {"errors": [{"message": e} for e in errors]})
        self._json(200, {})

    def _writable_repo(self, repo_id: str, revision: str) -> tuple[HubRepo | None, str | None]:
        ok, user = self._authenticated(require=True)
        if not ok:
            return None, None
        assert user is not None
        repo = self._readable_repo(repo_id, user)
        if repo is None:
            return None, None
        if not self.state.can_write(user, repo.owner):
            self._error(403, f"You don't have the rights to write to {repo_id}")
            return None, None
        if self._revision(repo, revision, branch_only=True) is None:
            return None, None
        return repo, user

    def _preupload(self, repo_id: str, revision: str) -> None:
        payload = json.loads(self._body() or b"{}")
        repo, _ = self._writable_repo(repo_id, revision)
        if repo is None:
            return
        files = []
        for f in payload["files"]:
            existing = repo.files.get(f["path"])
            files.append(
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": _git_blob_sha(existing) if existing is not None else None,
                }
            )
        self._json(200, {"files": files, "commitOid": repo.sha})

    def _commit(self, repo_id: str, revision: str) -> None:
        body = self._body()
        repo, user = self._writable_repo(repo_id, revision)
        if repo is None:
            return
        assert user is not None
        header: dict[str, Any] = {}
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    return self._error(400, "only base64 file content is supported")
                added[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                return self._error(
                    400, f"unsupported commit operation {key!r} (only regular uploads)"
                )
        if not header.get("summary"):
            return self._error(400, "commit summary is required")
        with self.state.lock:
            parent = header.get("parentCommit")
            if parent and not repo.sha.startswith(parent):
                return self._error(
                    412, "A commit has happened since. Please refresh and try again."
                )
            files = dict(repo.files)
            for path in deleted:
                for existing in [
                    p for p in files if p == path or p.startswith(path.rstrip("/") + "/")
                ]:
                    del files[existing]
            files.update(added)
            digest = hashlib.sha1(repo.sha.encode())
            for path in sorted(files):
                digest.update(path.encode() + b"\0" + _git_blob_sha(files[path]).encode())
            commit = HubCommit(
                digest.hexdigest(),
                header["summary"],
                header.get("description", ""),
                user,
                _now(),
                files,
            )
            repo.commits.append(commit)
        self._json(
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self.server.base_url}/{repo_id}/commit/{commit.oid}",
                "pullRequestUrl": None,
            },
        )

    def _model_info(self, repo_id: str, revision: str) -> None:
        ok, user = self._authenticated(require=False)
        if not ok:
            return
        repo = self._readable_repo(repo_id, user)
        commit = self._revision(repo, revision) if repo is not None else None
        if repo is None or commit is None:
            return
        card = card_metadata(commit.files.get("README.md"))
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo.owner,
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "createdAt": repo.created_at,
            "lastModified": commit.date,
            "tags": list((card or {}).get("tags") or []),
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }
        if card is not None:
            info["cardData"] = card
            if "library_name" in card:
                info["library_name"] = card["library_name"]
            if "model-index" in card:
                info["model-index"] = card["model-index"]
        self._json(200, info)

    def _tree(self, repo_id: str, revision: str, directory: str, recursive: bool) -> None:
        ok, user = self._authenticated(require=False)
        if not ok:
            return
        repo = self._readable_repo(repo_id, user)
        commit = self._revision(repo, revision) if repo is not None else None
        if repo is None or commit is None:
            return
        prefix = f"{directory.strip('/')}/" if directory.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            return self._error(404, f"{directory} does not exist on main", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for path, data in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if "/" in rest and not recursive:
                folder = prefix + rest.split("/", 1)[0]
                entries[folder] = {
                    "type": "directory",
                    "oid": hashlib.sha1(folder.encode()).hexdigest(),
                    "size": 0,
                    "path": folder,
                }
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(len(parts)):
                    folder = prefix + "/".join(parts[: i + 1])
                    entries[folder] = {
                        "type": "directory",
                        "oid": hashlib.sha1(folder.encode()).hexdigest(),
                        "size": 0,
                        "path": folder,
                    }
            entries[path] = {
                "type": "file",
                "oid": _git_blob_sha(data),
                "size": len(data),
                "path": path,
            }
        self._json(200, list(entries.values()))

    def _resolve(self, repo_id: str, revision: str, path: str, head: bool) -> None:
        ok, user = self._authenticated(require=False)
        if not ok:
            return
        repo = self._readable_repo(repo_id, user)
        commit = self._revision(repo, revision) if repo is not None else None
        if repo is None or commit is None:
            return
        data = commit.files.get(path)
        if data is None:
            return self._error(404, "Entry not found", "EntryNotFound")
        etag = _git_blob_sha(data)
        self._send(
            200,
            data,
            "application/octet-stream",
            head=head,
            headers={"ETag": f'"{etag}"', "X-Repo-Commit": commit.oid},
        )


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: HubState) -> None:
        super().__init__(("127.0.0.1", port), _HubHandler)
        self.state = state
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}"
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop kept-alive client connections too, so a stopped server is really gone."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class HubServer:
    """The fake Hub running in a background thread; `url` is what HF_ENDPOINT should be."""

    def __init__(
        self, tokens: dict[str, str], orgs: dict[str, set[str]] | None = None, port: int = 0
    ) -> None:
        self.state = HubState(tokens, orgs)
        self._httpd = _HubHTTPServer(port, self.state)
        self.url = self._httpd.base_url
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-hub", daemon=True
        )

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def running_hub(
    tokens: dict[str, str], orgs: dict[str, set[str]] | None = None
) -> Iterator[HubServer]:
    """Start the fake Hub on a free loopback port; yields the server (its `url` and `state`)."""
    server = HubServer(tokens, orgs).start()
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN=USER",
        help="an accepted token and the user it belongs to (repeatable)",
    )
    args = parser.parse_args()
    tokens = dict(t.split("=", 1) for t in args.token) or {"hf_test_token": "coral-test"}
    server = HubServer(tokens, port=args.port)
    print(f"fake Hub on {server.url} (tokens: {', '.join(tokens)})", flush=True)
    server._httpd.serve_forever()


if __name__ == "__main__":
    main()
