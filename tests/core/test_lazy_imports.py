"""`lazy_module` stands for a module until first read, then puts the real module in its place;
`lazy_exports` imports a package's names on first use."""

from __future__ import annotations

import subprocess
import sys

from coral.core.lazy_imports import LazyModule, lazy_exports, lazy_module


def test_a_stand_in_imports_on_first_read_and_replaces_itself() -> None:
    namespace: dict[str, object] = {}
    namespace["js"] = lazy_module("json", namespace, alias="js")
    assert isinstance(namespace["js"], LazyModule) and "json" in repr(namespace["js"])
    assert namespace["js"].dumps([1]) == "[1]"  # type: ignore[attr-defined]
    import json

    assert namespace["js"] is json


def test_exports_are_imported_by_name() -> None:
    getter = lazy_exports("coral.delta", {"DeltaEncoder": "delta_encoder"})
    from coral.delta.delta_encoder import DeltaEncoder

    assert getter("DeltaEncoder") is DeltaEncoder
    try:
        getter("Nope")
    except AttributeError as exc:
        assert "Nope" in str(exc)
    else:
        raise AssertionError("an unknown name must be an AttributeError")


def test_the_store_imports_without_numpy_until_a_tensor_is_read(tmp_path) -> None:
    probe = f"""
import sys
from coral.storage.pack_store import PackStore
from coral.storage.config import StoreConfig
store = PackStore({str(tmp_path / "objects")!r}, StoreConfig(fsync=False))
blob = store.put_blob("file", b"x")
assert store.get_blob("file", blob) == b"x"
print("numpy" in sys.modules)
import numpy as np
from coral.core.weight_tensor import WeightTensor, WeightMetadata
meta = WeightMetadata("w", (4,), np.dtype("float32"))
t = store.store(WeightTensor(np.arange(4, dtype=np.float32), meta))
print(store.load(t).data.tolist())
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["False", "[0.0, 1.0, 2.0, 3.0]"]
