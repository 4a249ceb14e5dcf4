"""docs/FORMAT.md is normative: decode stored objects with only what it says."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import blake3
import numpy as np
import zstandard

from coral.core.weight_tensor import WeightTensor
from coral.storage.config import StoreConfig
from coral.storage.local_store import LocalStore


def sparse(payload: bytes, n: int) -> bytes:
    (mask_len,) = struct.unpack_from("<Q", payload)
    dec = zstandard.ZstdDecompressor()
    bits = np.frombuffer(dec.decompress(payload[8 : 8 + mask_len]), np.uint8)
    mask = np.unpackbits(bits, count=n).astype(bool)
    out = np.zeros(n, np.uint8)
    if mask.any():
        out[mask] = np.frombuffer(dec.decompress(payload[8 + mask_len :]), np.uint8)
    return out.tobytes()


def decode_per_spec(path: Path, ref_raw: bytes | None = None) -> tuple[int, bytes]:
    buf = path.read_bytes()
    magic, version, enc, _dcode, itemsize, _depth, raw_len, nrefs = struct.unpack_from(
        "<4sBBBBBQB", buf
    )
    assert magic == b"CRLK" and version == 1
    pos = 18 + 32 * nrefs
    checksum = buf[pos : pos + 16]
    assert blake3.blake3(buf[:pos] + buf[pos + 16 :]).digest(length=16) == checksum
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
    return enc, body


def test_objects_decode_with_the_documented_format(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, StoreConfig(chunk_bytes=4096))
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(1500) * 0.1).astype(np.float32)
    b = a.copy()
    b[::50] += np.float32(0.01)
    rid = store.store(WeightTensor(a))
    tid = store.store(WeightTensor(b), reference=rid)

    def manifest(t: str) -> dict:
        return json.loads((tmp_path / "tensor" / t[:2] / t[2:]).read_bytes())

    ma, mb = manifest(rid), manifest(tid)
    assert mb["dtype"] == "float32" and mb["shape"] == [1500] and mb["chunk_bytes"] == 4096
    header = b"coral.tensor.v1\0float32\0" + b"1500\0"
    assert blake3.blake3(header + b.tobytes()).hexdigest() == tid
    # Reverse deltas: the newer version is FULL, the older one an XOR delta against it.
    newer, older = b"", b""
    for i, (ca, cb) in enumerate(zip(ma["chunks"], mb["chunks"], strict=True)):
        enc_new, raw_new = decode_per_spec(tmp_path / "chunk" / cb[:2] / cb[2:])
        enc_old, raw_old = decode_per_spec(tmp_path / "chunk" / ca[:2] / ca[2:], raw_new)
        assert (enc_new, enc_old) == (0, 1), f"chunk {i}: newest FULL, older XOR"
        assert blake3.blake3(b"coral.chunk.v1\0" + raw_new).hexdigest() == cb
        assert blake3.blake3(b"coral.chunk.v1\0" + raw_old).hexdigest() == ca
        newer += raw_new
        older += raw_old
    assert newer == b.tobytes() and older == a.tobytes()
