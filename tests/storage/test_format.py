"""docs/FORMAT.md is normative: decode stored objects with only what it says."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import blake3
import numpy as np
import xxhash
import zstandard

from coral.core.weight_tensor import WeightTensor
from coral.storage.config import StoreConfig
from coral.storage.pack_store import PackStore


def sparse(payload: bytes, n: int) -> bytes:
    (mask_len,) = struct.unpack_from("<Q", payload)
    dec = zstandard.ZstdDecompressor()
    bits = np.frombuffer(dec.decompress(payload[8 : 8 + mask_len]), np.uint8)
    mask = np.unpackbits(bits, count=n).astype(bool)
    out = np.zeros(n, np.uint8)
    if mask.any():
        out[mask] = np.frombuffer(dec.decompress(payload[8 + mask_len :]), np.uint8)
    return out.tobytes()


def chunk_per_spec(buf: bytes, ref_raw: bytes | None = None) -> tuple[int, bytes]:
    """Decode a version-2 chunk record with only what docs/FORMAT.md says."""
    magic, version, enc, _dcode, itemsize, raw_len, nrefs = struct.unpack_from("<4sBBBBQB", buf)
    assert magic == b"CRLK" and version == 2
    pos = 17 + 32 * nrefs
    checksum = buf[pos : pos + 16]
    pos += 16
    count = buf[pos]
    pos += 1
    entries = [struct.unpack_from("<BQ", buf, pos + 9 * i) for i in range(count)]
    pos += 9 * count
    n = raw_len // itemsize
    planes = []
    for mode, length in entries:
        payload = buf[pos : pos + length]
        pos += length
        plane = {
            0: lambda p: p,
            1: lambda p: zstandard.ZstdDecompressor().decompress(p),
            2: lambda p: bytes(n),
            3: lambda p: p * n,
            4: lambda p: sparse(p, n),
        }[mode](payload)
        planes.append(np.frombuffer(plane, np.uint8))
    body = np.stack(planes, axis=1).reshape(-1).tobytes()
    if enc == 1:
        assert ref_raw is not None
        body = bytes(a ^ b for a, b in zip(body, ref_raw, strict=True))
    assert xxhash.xxh3_128_digest(body) == checksum
    return enc, body


def pack_per_spec(path: Path) -> tuple[dict[str, tuple[str, bytes, int, list[str]]], list]:
    """{object id: (kind, record, encoding, refs)} and the hints of one pack file."""
    data = path.read_bytes()
    seq, count, hints_n, checksum, magic, version = struct.unpack_from(
        "<QII16s4sB", data, len(data) - 37
    )
    assert magic == b"CRPK" and version == 1 and seq > 0
    block_len = 123 * count + 64 * hints_n + 37
    start = len(data) - block_len
    assert xxhash.xxh3_128_digest(data[start : len(data) - 21]) == checksum
    kinds = ["chunk", "tensor", "tree", "commit", "tag", "file"]
    objects = {}
    for i in range(count):
        code, oid, off, length, rsum, enc, nrefs, r0, r1 = struct.unpack_from(
            "<B32sQQ8sBB32s32s", data, start + 123 * i
        )
        record = data[off : off + length]
        assert off + length <= start and xxhash.xxh3_64_digest(record) == rsum
        refs = [r.hex() for r in (r0, r1)[:nrefs]]
        objects[oid.hex()] = (kinds[code], record, enc, refs)
    pos = start + 123 * count
    hints = [
        (
            data[pos + 64 * i : pos + 64 * i + 32].hex(),
            data[pos + 64 * i + 32 : pos + 64 * (i + 1)].hex(),
        )
        for i in range(hints_n)
    ]
    return objects, hints


def test_objects_decode_with_the_documented_format(tmp_path: Path) -> None:
    store = PackStore(tmp_path, StoreConfig(chunk_bytes=4096))
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(1500) * 0.1).astype(np.float32)
    b = a.copy()
    b[::50] += np.float32(0.01)
    rid = store.store(WeightTensor(a))
    tid = store.store(WeightTensor(b), reference=rid)
    packs = sorted((tmp_path / "packs").glob("*.pack"))
    assert len(packs) == 2  # one pack per store call
    second, hints = {}, []
    for pack in packs:
        objs, h = pack_per_spec(pack)
        second.update(objs)
        hints += h
    ma, mb = json.loads(second[rid][1]), json.loads(second[tid][1])
    assert hints == list(zip(ma["chunks"], mb["chunks"], strict=True))  # reverse-delta hints
    store.repack()
    objects: dict = {}
    for pack in sorted((tmp_path / "packs").glob("*.pack"), key=lambda p: p.stat().st_mtime_ns):
        objects.update(pack_per_spec(pack)[0])  # the newest pack wins
    assert mb["dtype"] == "float32" and mb["shape"] == [1500] and mb["chunk_bytes"] == 4096
    header = b"coral.tensor.v1\0float32\0" + b"1500\0"
    assert blake3.blake3(header + b.tobytes()).hexdigest() == tid
    # Reverse deltas: the newer version is FULL, the older one an XOR delta against it.
    newer, older = b"", b""
    for i, (ca, cb) in enumerate(zip(ma["chunks"], mb["chunks"], strict=True)):
        kind_new, rec_new, enc_idx_new, _ = objects[cb]
        kind_old, rec_old, enc_idx_old, refs_old = objects[ca]
        enc_new, raw_new = chunk_per_spec(rec_new)
        enc_old, raw_old = chunk_per_spec(rec_old, raw_new)
        assert (kind_new, kind_old) == ("chunk", "chunk")
        assert (enc_new, enc_old) == (enc_idx_new, enc_idx_old) == (0, 1), f"chunk {i}"
        assert refs_old == [cb]
        assert blake3.blake3(b"coral.chunk.v1\0" + raw_new).hexdigest() == cb
        assert blake3.blake3(b"coral.chunk.v1\0" + raw_old).hexdigest() == ca
        newer += raw_new
        older += raw_old
    assert newer == b.tobytes() and older == a.tobytes()
