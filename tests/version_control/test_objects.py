"""Tree, Commit and Tag objects: canonical encodings and round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coral.core.hashing import hash_blob
from coral.errors import CorruptObjectError
from coral.version_control.objects import Commit, Tag, Tree, TreeEntry, canonical_json


def entry(name: str, tid: str = "a" * 64) -> TreeEntry:
    return TreeEntry(name, tid, (2, 3), "float32", layer_type="Linear", extra={"k": 1})


def test_tree_encoding_is_sorted_compact_utf8_and_order_independent() -> None:
    a = Tree({"b": entry("b"), "a": entry("a"), "é": entry("é")})
    b = Tree({"é": entry("é"), "a": entry("a"), "b": entry("b")})
    assert a.encode() == b.encode()
    text = a.encode().decode("utf-8")
    assert " " not in text and "é" in text
    obj = json.loads(text)
    assert [e["name"] for e in obj["entries"]] == ["a", "b", "é"]
    assert list(obj) == sorted(obj)
    assert a.tree_id == hash_blob("tree", a.encode())
    back = Tree.decode(a.encode())
    assert back.entries == a.entries


def test_commit_round_trip_and_hash() -> None:
    c = Commit(
        "t" * 64,
        ["p" * 64],
        "me",
        1700000000.25,
        "msg\nbody",
        {"metrics": {"loss": np.float32(0.5)}, "tags": ("a", "b")},
    )
    data = c.encode()
    assert data == canonical_json(json.loads(data))
    back = Commit.decode(data, c.compute_hash())
    assert back.message == "msg\nbody"
    assert back.metrics == {"loss": 0.5}
    assert back.tags == ["a", "b"]
    assert back.parents == ["p" * 64]
    assert back.encode() == data
    assert back.hash == c.compute_hash()
    assert back.datetime.year == 2023
    assert back.to_dict()["tree"] == "t" * 64


def test_tag_round_trip() -> None:
    t = Tag("v1", "c" * 64, "first", {"acc": 0.9}, "me", 1.5)
    back = Tag.decode(t.encode(), "x")
    assert (back.name, back.commit_hash, back.metrics, back.tag_id) == (
        "v1",
        "c" * 64,
        {"acc": 0.9},
        "x",
    )


@pytest.mark.parametrize(
    "data", [b"\xff\xfe", b"[]", b'{"type": "tree"}', b'{"type":"commit","format":99}']
)
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(CorruptObjectError):
        Tree.decode(
            data, "x"
        ) if b"tree" in data or b"[" in data or b"\xff" in data else Commit.decode(data, "x")


def test_entry_metadata_round_trip() -> None:
    e = entry("w")
    meta = e.to_metadata()
    assert meta.layer_type == "Linear" and meta.hash == e.tensor_id
    assert TreeEntry.from_metadata(meta, e.tensor_id) == e
    assert e.nbytes == 24
