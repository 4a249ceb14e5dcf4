"""A similarity index several machines share: delta bases found across repositories (rec 13).

With `[similarity] backend = "redis://HOST:PORT/DB"` every commit also files the fingerprints
of its new tensor lineages (the tensors stored without a delta reference) in a Redis-backed
LSH index (`coral.core.redis_lsh`), under `[similarity] namespace` (default "coral": every
repository using the same server and namespace shares one index). A tensor with no same-named
tensor in the parent commit is then delta-encoded against the most similar tensor found
either in the repository's own fingerprint index or in the shared one.

The shared index uses the hyperplanes of the local fingerprint index (`FingerprintIndex`: a
128-bit SimHash cut into 8 LSH tables of 16 bits), so its distances are the local index's,
a fingerprint is computed once per tensor for both, and a lookup is one round trip that
finds every tensor within 15 differing bits (cosine >= 0.93) for sure.

A delta base must be in this repository's store (reads never reach another machine), so a
candidate from Redis is used only when its tensor is present locally — fetched from a
common remote, say — and skipped otherwise. The index records which repositories committed
each tensor (`holders`: "host:path"), to tell where a missing base lives. A repository's
existing fingerprints are published the first time it uses a namespace, so enabling the
backend on an old repository makes its history findable too.

The index only ever helps compression: Redis down, slow or missing its client library,
commits go on with the local choice and one warning (logger `coral.similarity`) per process.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from coral.errors import CoralError

log = logging.getLogger("coral.similarity")

LOCAL = "local"
DEFAULTS = {"backend": LOCAL, "namespace": "coral"}
SCHEMES = ("redis", "rediss", "unix")
TABLES, TABLE_BITS = 8, 16  # 8 x 16 = the 128 bits of a FingerprintIndex fingerprint
CANDIDATES = 4  # nearest keys checked for local presence per lookup
CONNECT_TIMEOUT_S, IO_TIMEOUT_S = 2.0, 10.0
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_warned: set[str] = set()
Fingerprinted = tuple[str, tuple[int, ...], str, int]  # (tensor_id, shape, dtype, fingerprint)


@dataclass(frozen=True)
class SharedIndexSettings:
    """`[similarity] backend` ("local" or a Redis URL) and `[similarity] namespace`."""

    backend: str = LOCAL
    namespace: str = DEFAULTS["namespace"]

    @property
    def shared(self) -> bool:
        return self.backend != LOCAL


def check_backend(value: object) -> str:
    """`value` if it is "local" or a Redis URL (redis://, rediss://, unix://); else CoralError."""
    example = "e.g. `coral config set similarity.backend redis://127.0.0.1:6379/0`, or local"
    if not isinstance(value, str) or not value.strip():
        raise CoralError(f"bad similarity.backend {value!r}", hint=example)
    if value == LOCAL:
        return value
    try:
        url = urlsplit(value)
        port = url.port  # ValueError when not a number
    except ValueError:
        url, port = None, None
    if url is None or url.scheme not in SCHEMES:
        raise CoralError(
            f"similarity.backend {value!r} is neither local nor a Redis URL", hint=example
        )
    if url.scheme == "unix":
        if not url.path:
            raise CoralError(f"similarity.backend {value!r} names no socket", hint=example)
        return value
    db = url.path.strip("/")
    if not url.hostname or (db and not db.isdigit()) or (port is not None and not port):
        raise CoralError(
            f"similarity.backend {value!r} is not a Redis URL (redis://HOST[:PORT][/DB])",
            hint=example,
        )
    return value


def check_namespace(value: object) -> str:
    """A key prefix: letters, digits and `_.:-`, at most 128 characters."""
    if not isinstance(value, str) or not _NAMESPACE.fullmatch(value):
        raise CoralError(
            f"bad similarity.namespace {value!r}",
            hint="letters, digits and _.:-, e.g. `coral config set similarity.namespace team`",
        )
    return value


def shared_index_settings(config: Mapping[str, Any]) -> SharedIndexSettings:
    """The shared-index settings of a repository's effective config (checked)."""
    section = config.get("similarity")
    section = section if isinstance(section, Mapping) else {}
    return SharedIndexSettings(
        check_backend(section.get("backend", DEFAULTS["backend"])),
        check_namespace(section.get("namespace", DEFAULTS["namespace"])),
    )


def warn_once(backend: str, problem: str) -> None:
    """One warning per backend and process: the index is off, commits go on without it."""
    if backend in _warned:
        return
    _warned.add(backend)
    log.warning("warning: shared index %s %s; local bases only", backend, problem)


def _shape_text(shape: Iterable[int]) -> str:
    return "x".join(str(int(d)) for d in shape) or "scalar"


def band_codes(fingerprint: int) -> list[int]:
    """The 8 table codes of a 128-bit fingerprint (bits 16t..16t+15 for table t)."""
    mask = (1 << TABLE_BITS) - 1
    return [(int(fingerprint) >> (t * TABLE_BITS)) & mask for t in range(TABLES)]


class SharedIndex:
    """The Redis side of reference choice for one repository (see the module docstring).

    `fingerprint(weight)` is the local index's 128-bit SimHash; `holder` names this
    repository in the index. Methods raise the client's errors: `open_shared_index` and the
    commit pipeline turn them into one warning."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        holder: str,
        similarity_threshold: float,
        fingerprint: Callable[[Any], int],
        client: Any = None,
    ) -> None:
        import redis  # optional dependency: coral-vcs[redis]

        from coral.storage.fingerprint_index import NUM_BITS, SEED

        self.url, self.namespace, self.holder = url, namespace, holder
        self.max_hamming = math.floor(NUM_BITS * math.acos(similarity_threshold) / math.pi + 1e-9)
        self._fingerprint = fingerprint
        self._seed = SEED
        self._redis = client or redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=IO_TIMEOUT_S,
        )
        self._indexes: dict[tuple[str, str], Any] = {}
        self._repos = f"{namespace}:repos"
        self.disabled = False  # set by `disable`: a failure turns the index off

    def _index(self, shape: Iterable[int], dtype: str) -> Any:
        from coral.core.lsh_index import LSHConfig
        from coral.core.redis_lsh import RedisLSHIndex

        shape = tuple(int(d) for d in shape)
        key = (_shape_text(shape), dtype)
        index = self._indexes.get(key)
        if index is None:
            config = LSHConfig(num_hyperplanes=TABLE_BITS, num_tables=TABLES, seed=self._seed)
            index = self._indexes[key] = RedisLSHIndex(
                math.prod(shape),
                config,
                redis_url=self.url,
                namespace=f"{self.namespace}:{dtype}:{key[0]}",
                client=self._redis,
            )
        return index

    def _holders_key(self, tensor_id: str) -> str:
        return f"{self.namespace}:holders:{tensor_id}"

    @staticmethod
    def _shape_dtype(weight: Any) -> tuple[tuple[int, ...], str]:
        return tuple(weight.metadata.shape), weight.metadata.dtype_name

    # -- reading ------------------------------------------------------------------------------
    def find_similar(
        self,
        weight: Any,
        *,
        present: Callable[[str], bool],
        exclude: str | None = None,
        limit: int = 1,
    ) -> list[tuple[str, float]]:
        """Up to `limit` (tensor_id, estimated cosine) of shared tensors of `weight`'s shape
        and dtype within the threshold and `present` here, most similar first."""
        shape, dtype = self._shape_dtype(weight)
        if math.prod(shape) == 0:
            return []
        codes = band_codes(self._fingerprint(weight))
        found: list[tuple[str, float]] = []
        for key, dist in self._index(shape, dtype).query_codes(codes, CANDIDATES + 1):
            if dist > self.max_hamming or len(found) >= limit:
                break
            if key != exclude and present(str(key)):
                found.append((str(key), math.cos(math.pi * dist / (TABLES * TABLE_BITS))))
        return found

    def holders(self, tensor_id: str) -> list[str]:
        """The repositories ("host:path") that filed `tensor_id`, sorted."""
        return sorted(self._redis.smembers(self._holders_key(tensor_id)))

    def __contains__(self, tensor_id: object) -> bool:
        return isinstance(tensor_id, str) and bool(self._redis.exists(self._holders_key(tensor_id)))

    # -- writing ------------------------------------------------------------------------------
    def add_many(self, weights: Iterable[tuple[str, Any]]) -> int:
        """File (tensor_id, weight) pairs in one round trip; returns how many were filed."""
        return self.add_fingerprints(
            (tid, *self._shape_dtype(w), self._fingerprint(w)) for tid, w in weights
        )

    def add_fingerprints(self, rows: Iterable[Fingerprinted]) -> int:
        """File (tensor_id, shape, dtype, fingerprint) rows (empty tensors are left out),
        pipelined in batches; returns how many were filed."""
        filed = 0
        pipe = self._redis.pipeline(transaction=False)
        for tid, shape, dtype, fp in rows:
            if math.prod(shape) == 0:
                continue
            self._index(shape, dtype).insert_codes(band_codes(fp), tid, client=pipe)
            pipe.sadd(self._holders_key(tid), self.holder)
            filed += 1
            if filed % 2000 == 0:
                pipe.execute()
        pipe.execute()
        return filed

    def publish(self, records: Callable[[], Iterable[Fingerprinted]]) -> int:
        """File this repository's recorded fingerprints unless it did so before in this
        namespace (a marker per holder); returns how many were filed now."""
        if self._redis.sismember(self._repos, self.holder):
            return 0
        filed = self.add_fingerprints(records())
        self._redis.sadd(self._repos, self.holder)
        return filed

    def ping(self) -> None:
        self._redis.ping()

    def disable(self, exc: BaseException) -> None:
        """Stop using the index after a failure (one warning per process)."""
        self.disabled = True
        log.debug("similarity index %s failed", self.url, exc_info=exc)
        warn_once(self.url, "failed")

    def close(self) -> None:
        self._redis.close()


def best_reference(
    weight: Any, local: Any, shared: SharedIndex | None, present: Callable[[str], bool]
) -> str | None:
    """The most similar candidate of the local fingerprint index and the shared index (the
    same distances; the local one on a tie); a shared candidate only if `present` here.
    Never raises: a failing shared index is disabled, a failing local one is ignored."""
    exclude = weight.compute_hash()
    candidates: list[tuple[str, float]] = []
    if local is not None:
        with contextlib.suppress(Exception):  # it only helps compression: never fail an add
            candidates += local.find_similar(weight, exclude=exclude, limit=1)
    if shared is not None and not shared.disabled:
        try:
            candidates += shared.find_similar(weight, present=present, exclude=exclude)
        except Exception as exc:
            shared.disable(exc)
    best = max(candidates, key=lambda c: c[1], default=None)
    return best[0] if best is not None and best[0] != weight.metadata.hash else None


def file_quietly(shared: SharedIndex | None, rows: Iterable[Fingerprinted]) -> None:
    """`shared.add_fingerprints(rows)`, disabling the index instead of raising."""
    if shared is None or shared.disabled:
        return
    try:
        shared.add_fingerprints(rows)
    except Exception as exc:
        shared.disable(exc)


def repository_holder(db_path: Path) -> str:
    """How the index names a repository: "host:/path/of/the/repository"."""
    return f"{socket.gethostname()}:{Path(db_path).resolve().parent.parent}"


def open_shared_index(
    config: Mapping[str, Any],
    db_path: Path,
    *,
    similarity_threshold: float,
    fingerprint: Callable[[Any], int],
    records: Callable[[], Iterable[Fingerprinted]] | None = None,
) -> SharedIndex | None:
    """The repository's shared index, connected and published; None when the backend is
    local, or (after one warning) when the setting is bad or Redis cannot be used."""
    section = config.get("similarity")
    backend = section.get("backend", LOCAL) if isinstance(section, Mapping) else LOCAL
    if backend == LOCAL:
        return None
    try:
        settings = shared_index_settings(config)
    except CoralError as exc:
        log.debug("bad [similarity] setting: %s", exc.message)
        warn_once(str(backend), "has bad [similarity] settings")
        return None
    try:
        index = SharedIndex(
            settings.backend,
            settings.namespace,
            holder=repository_holder(db_path),
            similarity_threshold=similarity_threshold,
            fingerprint=fingerprint,
        )
    except ImportError:
        warn_once(settings.backend, "needs `pip install redis`")
        return None
    try:
        if records is not None:
            index.publish(records)
        else:
            index.ping()
    except Exception as exc:
        index.close()
        log.debug("similarity index %s unreachable", settings.backend, exc_info=exc)
        warn_once(settings.backend, "unreachable")
        return None
    return index
