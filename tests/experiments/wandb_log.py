"""Read a W&B transaction log (`run-<id>.wandb`) from disk, without any W&B service.

The file is a LevelDB-style log: a 7-byte header (":W&B", magic 0xBEE1, version 0), then
32 KiB blocks of chunks — CRC32 (4 bytes), length (2), type (1: full, 2: first, 3: middle,
4: last), data — whose reassembled payloads are `wandb_internal_pb2.Record` protobufs.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B" or struct.unpack("<H", data[4:6])[0] != 0xBEE1:
        raise ValueError(f"{path} is not a W&B transaction log")
    pos = HEADER
    pending = b""
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        body = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += left_in_block
            continue
        # the checksum covers the type byte and the data (some writers: the data only)
        if crc not in (
            zlib.crc32(bytes([kind]) + body) & 0xFFFFFFFF,
            zlib.crc32(body) & 0xFFFFFFFF,
        ):
            raise ValueError(f"bad checksum at offset {pos} in {path}")
        pos += CHUNK_HEADER + length
        if kind == FULL:
            yield body
        elif kind == FIRST:
            pending = body
        elif kind == MIDDLE:
            pending += body
        elif kind == LAST:
            yield pending + body
            pending = b""
        else:
            raise ValueError(f"unknown chunk type {kind} at offset {pos}")


def read_run(path: Path) -> dict[str, Any]:
    """{'run': {...}, 'history': [row...], 'config': {...}, 'summary': {...}, 'exit_code': int}."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {
        "run": None,
        "history": [],
        "config": {},
        "summary": {},
        "exit_code": None,
        "kinds": {},
    }
    for payload in payloads(path):
        record = pb.Record()  # type: ignore[attr-defined]
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        out["kinds"][kind] = out["kinds"].get(kind, 0) + 1
        if kind == "run":
            r = record.run
            out["run"] = {
                "run_id": r.run_id,
                "display_name": r.display_name,
                "project": r.project,
                "tags": list(r.tags),
                "notes": r.notes,
            }
            for item in r.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "config":
            for item in record.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                out["summary"][_key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)
