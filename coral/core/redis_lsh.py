"""`RedisLSHIndex`: the LSH index with its buckets in Redis, shared by many machines (roadmap 13).

Same hashing, probing and ranking as `coral.core.lsh_index.LSHIndex` (hyperplanes depend only
on the seed, so every machine computes the same codes). Layout under
`{namespace}:lsh:v1:d{dim}:k{hyperplanes}:t{tables}:s{seed}` (indexes with different settings
never mix):

- `…:b:{table}:{code}`  a SET of keys: one bucket;
- `…:sig`               a HASH key -> "seq code_0 … code_{t-1}" (insertion number and codes);
- `…:meta`              a HASH: `seq` (insertion counter), `buckets` (non-empty buckets).

Inserts and removals run as Lua scripts, so each is atomic even with many writers; a query
reads buckets with pipelined SMEMBERS, then the candidates' codes with one HMGET
(`query_codes` takes codes computed elsewhere, e.g. a SimHash fingerprint's bands, and probes
every single-bit flip: see `coral.version_control.shared_index`). Keys must be strings.
Scripts build key names at run time: use a single Redis server (not Redis Cluster).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from coral.core.lsh_index import LSHConfig, _LSHBase

_INSERT = """
local prefix, member, codes = ARGV[1], ARGV[2], ARGV[3]
local sig, meta = prefix .. ':sig', prefix .. ':meta'
local old = redis.call('HGET', sig, member)
if old then
  local t = -1
  for tok in string.gmatch(old, '%S+') do
    if t >= 0 then
      local b = prefix .. ':b:' .. t .. ':' .. tok
      if redis.call('SREM', b, member) == 1 and redis.call('SCARD', b) == 0 then
        redis.call('HINCRBY', meta, 'buckets', -1)
      end
    end
    t = t + 1
  end
end
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local t = 0
for tok in string.gmatch(codes, '%S+') do
  local b = prefix .. ':b:' .. t .. ':' .. tok
  if redis.call('SADD', b, member) == 1 and redis.call('SCARD', b) == 1 then
    redis.call('HINCRBY', meta, 'buckets', 1)
  end
  t = t + 1
end
redis.call('HSET', sig, member, seq .. ' ' .. codes)
return seq
"""

_REMOVE = """
local prefix, member = ARGV[1], ARGV[2]
local sig, meta = prefix .. ':sig', prefix .. ':meta'
local old = redis.call('HGET', sig, member)
if not old then return 0 end
local t = -1
for tok in string.gmatch(old, '%S+') do
  if t >= 0 then
    local b = prefix .. ':b:' .. t .. ':' .. tok
    if redis.call('SREM', b, member) == 1 and redis.call('SCARD', b) == 0 then
      redis.call('HINCRBY', meta, 'buckets', -1)
    end
  end
  t = t + 1
end
redis.call('HDEL', sig, member)
return 1
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisLSHIndex(_LSHBase):
    """An LSH index of `vector_dim`-element vectors whose buckets are Redis sets."""

    def __init__(
        self,
        vector_dim: int,
        config: LSHConfig | None = None,
        redis_url: str = "redis://127.0.0.1:6379/0",
        namespace: str = "coral",
        client: Any = None,
    ) -> None:
        super().__init__(vector_dim, config)
        import redis  # optional dependency: coral-vcs[redis]

        self.redis_url = redis_url
        self.namespace = namespace
        self._redis = (
            client if client is not None else redis.Redis.from_url(redis_url, decode_responses=True)
        )
        c = self.config
        self.prefix = (
            f"{namespace}:lsh:v1:d{self.vector_dim}:k{c.num_hyperplanes}:t{c.num_tables}:s{c.seed}"
        )
        self._sig = f"{self.prefix}:sig"
        self._meta = f"{self.prefix}:meta"
        self._insert_script = self._redis.register_script(_INSERT)
        self._remove_script = self._redis.register_script(_REMOVE)

    # -- writing ------------------------------------------------------------------------------
    @staticmethod
    def _check_key(key: Hashable) -> str:
        if not isinstance(key, str):
            raise TypeError(f"RedisLSHIndex keys are strings, got {type(key).__name__}")
        return key

    def _bucket(self, table: int, code: int) -> str:
        return f"{self.prefix}:b:{table}:{code}"

    def insert(self, vec: Any, key: Hashable) -> None:
        """Hash `vec` and file it under `key` (replacing an earlier entry for `key`)."""
        codes, _ = self.signature(vec)
        self.insert_codes(codes.tolist(), key)

    def insert_batch(self, vectors: Sequence[Any] | np.ndarray, keys: Sequence[Hashable]) -> None:
        """Insert several vectors in one round trip."""
        if len(vectors) != len(keys):
            raise ValueError("vectors and keys differ in length")
        codes = self.codes_many(vectors)
        pipe = self._redis.pipeline(transaction=False)
        for key, row in zip(keys, codes.tolist(), strict=True):
            self.insert_codes(row, key, client=pipe)
        pipe.execute()

    def insert_codes(self, codes: Sequence[int], key: Hashable, client: Any = None) -> None:
        """File `key` under codes computed elsewhere (one per table, e.g. the bands of a
        SimHash fingerprint made with the same hyperplanes); `client` may be a pipeline."""
        if len(codes) != self.config.num_tables:
            raise ValueError(f"expected {self.config.num_tables} codes, got {len(codes)}")
        self._insert_script(
            args=[self.prefix, self._check_key(key), " ".join(str(int(c)) for c in codes)],
            client=client,
        )

    def remove(self, key: Hashable) -> bool:
        """Forget `key`; False when it was not stored."""
        return bool(self._remove_script(args=[self.prefix, self._check_key(key)]))

    def clear(self) -> None:
        """Delete every Redis key of this index."""
        batch: list[str] = []
        for name in self._redis.scan_iter(match=_glob_escape(self.prefix) + ":*", count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                self._redis.delete(*batch)
                batch = []
        if batch:
            self._redis.delete(*batch)

    # -- reading ------------------------------------------------------------------------------
    def _gather(self, probes: list[tuple[int, int]], found: set[Any]) -> set[Any]:
        if not probes:
            return found
        pipe = self._redis.pipeline(transaction=False)
        for t, code in probes:
            pipe.smembers(self._bucket(t, code))
        for members in pipe.execute():
            found |= members
        return found

    def _candidate_codes(self, members: set[Any]) -> tuple[Any, np.ndarray, np.ndarray]:
        keys = sorted(members)
        sigs = self._redis.hmget(self._sig, keys) if keys else []
        kept: list[str] = []
        rows: list[list[int]] = []
        for key, sig in zip(keys, sigs, strict=True):
            if sig is None:  # removed meanwhile
                continue
            parts = sig.split()
            kept.append(key)
            rows.append([int(p) for p in parts])
        if not rows:
            return [], np.zeros((0, self.config.num_tables), np.uint64), np.zeros(0, np.int64)
        table = np.array(rows, dtype=np.uint64)
        return kept, table[:, 1:], table[:, 0].astype(np.int64)

    def _keys_of(self, handles: list[Any]) -> list[Hashable]:
        return list(handles)

    def query_codes(self, codes: Sequence[int], limit: int) -> list[tuple[Hashable, int]]:
        """Up to `limit` (key, Hamming distance over all tables) nearest to `codes`, probing
        every table's own bucket and every single-bit flip of it in one round trip. Exact for
        near keys: a key within `2 * num_tables - 1` bits agrees with `codes` up to one bit in
        some table, so it is always found (pigeonhole), with no projection to compute."""
        if len(codes) != self.config.num_tables:
            raise ValueError(f"expected {self.config.num_tables} codes, got {len(codes)}")
        if limit <= 0:
            return []
        k = self.config.num_hyperplanes
        probes = [(t, int(c)) for t, c in enumerate(codes)]
        probes += [(t, int(c) ^ (1 << j)) for t, c in enumerate(codes) for j in range(k)]
        found = self._gather(probes, set())
        if not found:
            return []
        return self._rank(found, np.array([int(c) for c in codes], dtype=np.uint64), limit)

    def __len__(self) -> int:
        return int(self._redis.hlen(self._sig))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self._redis.hexists(self._sig, key))

    def get_stats(self) -> dict[str, Any]:
        n = len(self)
        buckets = int(self._redis.hget(self._meta, "buckets") or 0)
        return {
            "num_vectors": n,
            "num_tables": self.config.num_tables,
            "num_hyperplanes": self.config.num_hyperplanes,
            "vector_dim": self.vector_dim,
            "total_buckets": buckets,
            "avg_bucket_size": n * self.config.num_tables / buckets if buckets else 0.0,
        }

    def close(self) -> None:
        self._redis.close()
