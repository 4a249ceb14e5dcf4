"""Storage benchmark: Coral's object store beside the formats a user would otherwise pick.

    python -m benchmarks.storage [--scale 1] [--out bench-out] [--repeat 3] [--experiments]

For every corpus (see `benchmarks/corpora.py`) each method writes the whole history, then the
newest and the oldest checkpoint are read back and compared byte for byte with the originals.
One table per corpus; results also go to `<out>/storage.json`.

What is measured (all methods alike, one process, side by side):
- stored bytes: the apparent size of every file the method left on disk (headers, manifests
  and the name -> id map included).
- write: wall time to persist the whole history from in-memory numpy arrays, relative to
  `safetensors.torch.save_file` of the same tensors (no fsync: what safetensors does). Coral
  runs with its default `fsync=True`.
- read: wall time to restore one checkpoint into preallocated arrays (what
  `model.load_state_dict` does), relative to `safetensors.torch.load_file` + that same copy.
  The OS page cache is warm for every method (files were just written); Coral's own chunk cache
  is cold (a new `LocalStore` per read).
- peak: growth of the process's resident set during the write phase, above the resident set at
  its start (the corpus is already in memory then). Linux's peak-RSS counter (VmHWM) is reset
  through /proc/self/clear_refs before each phase, so allocations in C (numpy, zstd) count too.
- order-0 limit: sum over tensors (exact duplicates free) of min(H0 of the FULL byte planes,
  H0 of the XOR-with-reference byte planes) x plane length: what an ideal order-0 entropy coder
  of the better of the two plane sets reaches.

Timings are the best of `--repeat` reads and `--write-repeat` writes (the machine may be shared).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import ml_dtypes
import numpy as np
import zstandard

from benchmarks.corpora import Corpus, build_corpora

Arrays = dict[str, np.ndarray]
SLOW_WRITE_S = 10.0  # writes slower than this are not repeated


# -- measurement helpers ------------------------------------------------------------------------
def _proc_status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _malloc_trim() -> None:
    """Give freed heap back to the OS so a phase's growth is not hidden by memory freed earlier."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak resident-set growth inside a `with` block (bytes)."""

    def __init__(self) -> None:
        self.start = 0
        self.peak = 0
        self.exact = True

    def __enter__(self) -> PeakRSS:
        gc.collect()
        _malloc_trim()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
        except OSError:
            self.exact = False
        self.start = _proc_status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(0, _proc_status("VmHWM") - self.start)


def evict_page_cache(folder: Path) -> None:
    """Drop this folder's files from the OS page cache (fsync, then POSIX_FADV_DONTNEED)."""
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def dir_bytes(folder: Path) -> int:
    """Apparent size of every file under `folder` (work-in-progress `tmp/` excluded)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        if "tmp" in dirs and Path(root) == folder:
            dirs.remove("tmp")
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _u8(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1).view(np.uint8)


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


# -- baselines: a tiny container for per-checkpoint files -------------------------------------
_ZSTD3 = zstandard.ZstdCompressor(level=3)
_UNZSTD = zstandard.ZstdDecompressor()


def _write_container(path: Path, entries: list[tuple[str, dict[str, Any], list[bytes]]]) -> None:
    """u64 header length | JSON header | payloads; the header lists each payload's length."""
    head = [{"name": n, **meta, "parts": [len(p) for p in parts]} for n, meta, parts in entries]
    blob = json.dumps(head, separators=(",", ":")).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for _, _, parts in entries:
            for p in parts:
                fh.write(p)


def _read_container(path: Path) -> list[tuple[dict[str, Any], list[memoryview]]]:
    data = memoryview(path.read_bytes())
    (n,) = struct.unpack_from("<Q", data)
    head = json.loads(bytes(data[8 : 8 + n]))
    pos = 8 + n
    out = []
    for entry in head:
        parts = []
        for length in entry["parts"]:
            parts.append(data[pos : pos + length])
            pos += length
        out.append((entry, parts))
    return out


def _planes(raw: np.ndarray, itemsize: int) -> list[np.ndarray]:
    rows = raw.reshape(-1, itemsize)
    return [np.ascontiguousarray(rows[:, k]) for k in range(itemsize)]


def _unplanes(parts: list[bytes], itemsize: int, out: np.ndarray) -> None:
    rows = out.reshape(-1, itemsize)
    for k, p in enumerate(parts):
        rows[:, k] = np.frombuffer(p, dtype=np.uint8)


def _xor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    for width in (np.uint64, np.uint32, np.uint16):
        if a.size % np.dtype(width).itemsize == 0:
            return np.bitwise_xor(a.view(width), b.view(width)).view(np.uint8)
    return np.bitwise_xor(a, b)


def _to_torch(arrays: Arrays):
    import torch

    return {
        k: (
            torch.from_numpy(v.view(np.int16)).view(torch.bfloat16)
            if v.dtype == ml_dtypes.bfloat16
            else torch.from_numpy(v)
        )
        for k, v in arrays.items()
    }


def _copy_torch_into(tensors, dest: Arrays) -> None:
    import torch

    for k, t in tensors.items():
        src = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        np.copyto(_u8(dest[k]), _u8(src.numpy()))


# -- methods ----------------------------------------------------------------------------------
@dataclass
class Method:
    """One storage method: writes a corpus's whole history, restores one checkpoint."""

    name: str
    kind: str  # "reference" | "baseline" | "coral" | "experiment"
    write: Callable[[Corpus, Path], None]
    read: Callable[[Corpus, Path, int, Arrays], None]  # fills the preallocated arrays
    note: str = ""
    config: dict[str, Any] = field(default_factory=dict)


def _st_write(corpus: Corpus, folder: Path) -> None:
    from safetensors.torch import save_file

    for i, ck in enumerate(corpus.checkpoints):
        save_file(_to_torch(ck), str(folder / f"{i:02d}.safetensors"))


def _st_read(corpus: Corpus, folder: Path, index: int, dest: Arrays) -> None:
    from safetensors.torch import load_file

    _copy_torch_into(load_file(str(folder / f"{index:02d}.safetensors")), dest)


def _st_fsync_write(corpus: Corpus, folder: Path) -> None:
    _st_write(corpus, folder)
    for path in sorted(folder.iterdir()):
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _zstd_file_write(corpus: Corpus, folder: Path) -> None:
    from safetensors.torch import save

    for i, ck in enumerate(corpus.checkpoints):
        (folder / f"{i:02d}.safetensors.zst").write_bytes(_ZSTD3.compress(save(_to_torch(ck))))


def _zstd_file_read(corpus: Corpus, folder: Path, index: int, dest: Arrays) -> None:
    from safetensors.torch import load

    data = _UNZSTD.decompress((folder / f"{index:02d}.safetensors.zst").read_bytes())
    _copy_torch_into(load(data), dest)


def _bg_write(corpus: Corpus, folder: Path) -> None:
    for i, ck in enumerate(corpus.checkpoints):
        entries = []
        for name, a in ck.items():
            parts = [_ZSTD3.compress(p.data) for p in _planes(_u8(a), a.itemsize)]
            entries.append((name, {"itemsize": a.itemsize}, parts))
        _write_container(folder / f"{i:02d}.bg", entries)


def _bg_read(corpus: Corpus, folder: Path, index: int, dest: Arrays) -> None:
    for entry, parts in _read_container(folder / f"{index:02d}.bg"):
        _unplanes(
            [_UNZSTD.decompress(p) for p in parts], entry["itemsize"], _u8(dest[entry["name"]])
        )


_ZIPNN_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _zipnn(dtype: str):
    from zipnn import ZipNN

    return ZipNN(input_format="byte", bytearray_dtype=_ZIPNN_DTYPES[dtype])


def _zipnn_write(corpus: Corpus, folder: Path) -> None:
    codec = _zipnn(corpus.dtype)
    for i, ck in enumerate(corpus.checkpoints):
        # ZipNN rewrites the buffer it is given: hand it a copy.
        entries: list[tuple[str, dict[str, Any], list[bytes]]] = [
            (name, {}, [codec.compress(bytearray(_u8(a).data))]) for name, a in ck.items()
        ]
        _write_container(folder / f"{i:02d}.znn", entries)


def _zipnn_read(corpus: Corpus, folder: Path, index: int, dest: Arrays) -> None:
    codec = _zipnn(corpus.dtype)
    for entry, parts in _read_container(folder / f"{index:02d}.znn"):
        np.copyto(
            _u8(dest[entry["name"]]),
            np.frombuffer(codec.decompress(bytes(parts[0])), dtype=np.uint8),
        )


def _xor_write(corpus: Corpus, folder: Path) -> None:
    for i, ck in enumerate(corpus.checkpoints):
        ref_i = corpus.references[i]
        ref = corpus.checkpoints[ref_i] if ref_i is not None else {}
        entries = []
        for name, a in ck.items():
            raw = _u8(a)
            r = ref.get(name)
            use_ref = r is not None and r.shape == a.shape and r.dtype == a.dtype
            body = _xor(raw, _u8(r)) if r is not None and use_ref else raw
            parts = [_ZSTD3.compress(p.data) for p in _planes(body, a.itemsize)]
            entries.append((name, {"itemsize": a.itemsize, "xor": use_ref}, parts))
        _write_container(folder / f"{i:02d}.xbg", entries)


def _xor_read(corpus: Corpus, folder: Path, index: int, dest: Arrays) -> None:
    """Decodes the reference chain back to the first full checkpoint (no cache)."""
    chain = [index]
    while corpus.references[chain[-1]] is not None:
        chain.append(corpus.references[chain[-1]])  # type: ignore[arg-type]
    current: Arrays = {}
    for i in reversed(chain):
        nxt: Arrays = {}
        for entry, parts in _read_container(folder / f"{i:02d}.xbg"):
            name, itemsize = entry["name"], entry["itemsize"]
            out = _u8(dest[name]) if i == index else np.empty(_u8(dest[name]).size, np.uint8)
            _unplanes([_UNZSTD.decompress(p) for p in parts], itemsize, out)
            if entry["xor"]:
                np.bitwise_xor(out, current[name], out=out)
            nxt[name] = out
        current = nxt


def _coral_write(config_kw: dict[str, Any]) -> Callable[[Corpus, Path], None]:
    def write(corpus: Corpus, folder: Path) -> None:
        from coral.core.weight_tensor import WeightTensor
        from coral.storage.config import StoreConfig
        from coral.storage.local_store import LocalStore

        store = LocalStore(folder / "objects", StoreConfig(**config_kw))
        ids: list[dict[str, str]] = []
        for i, ck in enumerate(corpus.checkpoints):
            ref_i = corpus.references[i]
            ref_ids = ids[ref_i] if ref_i is not None else {}
            items = [(WeightTensor(a, name=n), ref_ids.get(n)) for n, a in ck.items()]
            got = store.store_many(items)
            ids.append(dict(zip(ck, got, strict=True)))
        store.close()
        (folder / "ids.json").write_text(json.dumps(ids))

    return write


def _coral_read(config_kw: dict[str, Any]) -> Callable[[Corpus, Path, int, Arrays], None]:
    def read(corpus: Corpus, folder: Path, index: int, dest: Arrays) -> None:
        from coral.storage.config import StoreConfig
        from coral.storage.local_store import LocalStore

        ids = json.loads((folder / "ids.json").read_text())[index]
        store = LocalStore(folder / "objects", StoreConfig(**config_kw))  # cold chunk cache
        try:
            names = list(ids)
            for name, weight in zip(names, store.load_many(ids[n] for n in names), strict=True):
                np.copyto(_u8(dest[name]), _u8(weight.data))
        finally:
            store.close()

    return read


def coral_method(label: str, kind: str = "coral", note: str = "", **config_kw: Any) -> Method:
    return Method(label, kind, _coral_write(config_kw), _coral_read(config_kw), note, config_kw)


def effective_config(config_kw: dict[str, Any]) -> dict[str, Any]:
    """Every StoreConfig field as this run used it (defaults included), for the JSON report."""
    from dataclasses import asdict

    from coral.storage.config import StoreConfig

    cfg = StoreConfig(**config_kw)
    return {**asdict(cfg), "codec": repr(cfg.codec)}


def standard_methods() -> list[Method]:
    return [
        Method(
            "safetensors",
            "reference",
            _st_write,
            _st_read,
            "safetensors.torch save_file / load_file",
        ),
        Method(
            "safetensors + fsync",
            "info",
            _st_fsync_write,
            _st_read,
            "the same files made durable (fsync of each file and the folder), for scale only",
        ),
        Method(
            "per-file zstd-3",
            "baseline",
            _zstd_file_write,
            _zstd_file_read,
            "zstd -3 of each checkpoint's safetensors bytes",
        ),
        Method(
            "byte-grouped zstd-3",
            "baseline",
            _bg_write,
            _bg_read,
            "byte planes per tensor, zstd -3 each",
        ),
        Method(
            "ZipNN",
            "baseline",
            _zipnn_write,
            _zipnn_read,
            "zipnn 0.5.4, default method, per tensor",
        ),
        Method(
            "XOR-ref + byte-grouped zstd-3",
            "baseline",
            _xor_write,
            _xor_read,
            "XOR with the reference checkpoint's tensor, planes, zstd -3; reads decode the chain",
        ),
        coral_method("Coral default", mode="default"),
        coral_method("Coral max", mode="max"),
        coral_method("Coral fast", mode="fast"),
    ]


def experiment_methods() -> list[Method]:
    """Other StoreConfig values, to show where the knobs lead (max-mode variants: too slow)."""
    return [
        coral_method("default, fsync off", "experiment", mode="default", fsync=False),
        coral_method("default, forward deltas", "experiment", mode="default", reverse_deltas=False),
        coral_method(
            "default, forward, fsync off",
            "experiment",
            mode="default",
            reverse_deltas=False,
            fsync=False,
        ),
        coral_method("default, depth 4", "experiment", mode="default", max_chain_depth=4),
        coral_method("default, depth 32", "experiment", mode="default", max_chain_depth=32),
        coral_method("default, chunk 1 MiB", "experiment", mode="default", chunk_bytes=1 << 20),
        coral_method("default, chunk 256 KiB", "experiment", mode="default", chunk_bytes=256 << 10),
        coral_method("default, 1 worker", "experiment", mode="default", workers=1),
    ]


# -- order-0 entropy limit --------------------------------------------------------------------
def _h0_bytes(plane: np.ndarray) -> float:
    counts = np.bincount(plane, minlength=256)
    counts = counts[counts > 0]
    p = counts / plane.size
    return float(-(counts * np.log2(p)).sum()) / 8.0


def order0_limit(corpus: Corpus) -> dict[str, float]:
    """Ideal plane-wise order-0 coding of the better of FULL and XOR-with-reference per tensor."""
    seen: set[tuple[str, str]] = set()
    full_total = best_total = 0.0
    xor_chosen = dup = 0
    for i, ck in enumerate(corpus.checkpoints):
        ref_i = corpus.references[i]
        ref = corpus.checkpoints[ref_i] if ref_i is not None else {}
        for name, a in ck.items():
            raw = _u8(a)
            key = (a.dtype.name, blake3.blake3(raw.data).hexdigest() + str(a.shape))
            if key in seen:
                dup += 1
                continue
            seen.add(key)
            full = sum(_h0_bytes(p) for p in _planes(raw, a.itemsize))
            best = full
            r = ref.get(name)
            if r is not None and r.shape == a.shape and r.dtype == a.dtype:
                xored = sum(_h0_bytes(p) for p in _planes(_xor(raw, _u8(r)), a.itemsize))
                if xored < best:
                    best = xored
                    xor_chosen += 1
            full_total += full
            best_total += best
    return {
        "bytes": best_total,
        "full_only_bytes": full_total,
        "xor_tensors": xor_chosen,
        "duplicates": dup,
    }


# -- running ----------------------------------------------------------------------------------
def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _verify(corpus: Corpus, index: int, dest: Arrays, label: str) -> None:
    for name, a in corpus.checkpoints[index].items():
        if not np.array_equal(_u8(a), _u8(dest[name])):
            raise AssertionError(f"{label}: checkpoint {index} tensor {name} is not bit-exact")


def run_method(
    method: Method, corpus: Corpus, work: Path, repeat: int, write_repeat: int
) -> dict[str, Any]:
    folder = work / corpus.name / method.name.replace(" ", "_").replace(",", "")
    newest, oldest = len(corpus.checkpoints) - 1, 0
    write_times = []
    peak = 0
    if method.kind == "reference":
        write_repeat = max(write_repeat, 5)  # cheap, and every other write is divided by it
    for attempt in range(write_repeat):
        _fresh(folder)
        with PeakRSS() as mem:
            write_times.append(_timed(lambda: method.write(corpus, folder)))
        if attempt == 0:
            peak = mem.peak
        if write_times[-1] > SLOW_WRITE_S:
            break  # slow enough that noise does not matter; spare the time
    stored = dir_bytes(folder)
    result: dict[str, Any] = {
        "kind": method.kind,
        "note": method.note,
        "config": method.config,
        "stored_bytes": stored,
        "ratio": corpus.raw_bytes / stored,
        "write_s": min(write_times),
        "write_peak_rss_bytes": peak,
        "peak_rss_exact": mem.exact,
    }
    for label, index in (("newest", newest), ("oldest", oldest)):
        for suffix, evict in (("", False), ("_disk", True)):
            times = []
            for _ in range(repeat):
                dest = {n: np.zeros_like(a) for n, a in corpus.checkpoints[index].items()}
                gc.collect()
                if evict:
                    evict_page_cache(folder)
                times.append(_timed(lambda d=dest, i=index: method.read(corpus, folder, i, d)))  # type: ignore[misc]
                _verify(corpus, index, dest, method.name)
            result[f"read_{label}{suffix}_s"] = min(times)
    result["bit_exact"] = True
    if method.kind in ("coral", "experiment"):
        from coral.storage.local_store import LocalStore

        result["config"] = effective_config(method.config)
        st = LocalStore(folder / "objects").store_stats()
        result["encodings"] = st.encodings
        result["chunks"] = st.chunks
    return result


def evaluate_targets(
    corpus: Corpus, rows: dict[str, dict[str, Any]], limit: dict[str, float]
) -> list[dict[str, Any]]:
    ref = rows["safetensors"]
    baselines = {k: v for k, v in rows.items() if v["kind"] == "baseline"}
    best_name = max(baselines, key=lambda k: baselines[k]["ratio"])
    best = baselines[best_name]["ratio"]
    d, mx = rows["Coral default"], rows["Coral max"]
    limit_ratio = corpus.raw_bytes / limit["bytes"]
    budget = corpus.largest_tensor + (512 << 20)

    def rel(row: dict[str, Any], key: str, ref_key: str) -> float:
        return float(row[key] / ref[ref_key])

    checks = [
        (
            "whole-history ratio >= best baseline",
            f">= {best:.2f} ({best_name})",
            f"default {d['ratio']:.2f}, max {mx['ratio']:.2f}",
            d["ratio"] >= best,
        ),
        (
            "write <= 2x safetensors save",
            "<= 2.00x",
            f"{rel(d, 'write_s', 'write_s'):.2f}x",
            rel(d, "write_s", "write_s") <= 2.0,
        ),
        (
            "read newest <= 1.5x safetensors load",
            "<= 1.50x",
            f"{rel(d, 'read_newest_s', 'read_newest_s'):.2f}x",
            rel(d, "read_newest_s", "read_newest_s") <= 1.5,
        ),
        (
            "read oldest <= 3x safetensors load",
            "<= 3.00x",
            f"{rel(d, 'read_oldest_s', 'read_oldest_s'):.2f}x",
            rel(d, "read_oldest_s", "read_oldest_s") <= 3.0,
        ),
        (
            "peak memory storing <= largest tensor + 512 MB",
            f"<= {budget / 1e6:.0f} MB",
            f"{d['write_peak_rss_bytes'] / 1e6:.0f} MB",
            d["write_peak_rss_bytes"] <= budget,
        ),
        (
            "max mode >= order-0 limit within 10x save",
            f">= {limit_ratio:.2f}, <= 10.00x",
            f"{mx['ratio']:.2f}, {rel(mx, 'write_s', 'write_s'):.2f}x",
            mx["ratio"] >= limit_ratio and rel(mx, "write_s", "write_s") <= 10.0,
        ),
    ]
    return [{"target": t, "goal": g, "measured": m, "pass": bool(p)} for t, g, m, p in checks]


# -- output -----------------------------------------------------------------------------------
def _fmt_rel(v: float) -> str:
    return f"{v:.2f}x"


def render(
    corpus: Corpus,
    rows: dict[str, dict[str, Any]],
    limit: dict[str, float],
    targets: list[dict[str, Any]],
    console,
) -> None:
    from rich.table import Table

    ref = rows["safetensors"]
    table = Table(
        title=f"{corpus.name}: {len(corpus.checkpoints)} checkpoints, "
        f"{corpus.raw_bytes / 1e6:.1f} MB raw — {corpus.description}",
        title_justify="left",
        show_lines=False,
    )
    for col, just in (
        ("method", "left"),
        ("stored MB", "right"),
        ("ratio", "right"),
        ("write", "right"),
        ("read newest", "right"),
        ("read oldest", "right"),
        ("read new/old, disk", "right"),
        ("peak MB", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    table.add_row("raw bytes", f"{corpus.raw_bytes / 1e6:.1f}", "1.00", "", "", "", "", "")
    for name, r in rows.items():
        if name == "safetensors":
            write = f"1.00x ({r['write_s']:.3f}s)"
            rn = f"1.00x ({r['read_newest_s'] * 1e3:.1f}ms)"
            ro = f"1.00x ({r['read_oldest_s'] * 1e3:.1f}ms)"
            new_ms, old_ms = r["read_newest_disk_s"] * 1e3, r["read_oldest_disk_s"] * 1e3
            disk = f"1.00x/1.00x ({new_ms:.0f}/{old_ms:.0f}ms)"
        else:
            write = _fmt_rel(r["write_s"] / ref["write_s"])
            rn = _fmt_rel(r["read_newest_s"] / ref["read_newest_s"])
            ro = _fmt_rel(r["read_oldest_s"] / ref["read_oldest_s"])
            disk = (
                _fmt_rel(r["read_newest_disk_s"] / ref["read_newest_disk_s"])
                + "/"
                + _fmt_rel(r["read_oldest_disk_s"] / ref["read_oldest_disk_s"])
            )
        table.add_row(
            name,
            f"{r['stored_bytes'] / 1e6:.2f}",
            f"{r['ratio']:.2f}",
            write,
            rn,
            ro,
            disk,
            f"{r['write_peak_rss_bytes'] / 1e6:.0f}",
            end_section=name
            in ("safetensors + fsync", "XOR-ref + byte-grouped zstd-3", "Coral fast"),
        )
    table.add_row(
        "order-0 limit (best of FULL/XOR planes)",
        f"{limit['bytes'] / 1e6:.2f}",
        f"{corpus.raw_bytes / limit['bytes']:.2f}",
        "",
        "",
        "",
        "",
        "",
    )
    console.print(table)
    cfg = rows["Coral default"].get("config", {})
    console.print(
        f"Coral default = StoreConfig({', '.join(f'{k}={v}' for k, v in cfg.items())}); "
        "write = whole history; reads restore one checkpoint into preallocated arrays (warm page "
        "cache; 'disk': the method's files evicted from the page cache first); "
        "peak = RSS growth while writing"
    )
    t2 = Table(title=f"{corpus.name}: targets (Coral default unless named)", title_justify="left")
    for col in ("target", "goal", "measured", "result"):
        t2.add_column(col)
    for t in targets:
        t2.add_row(t["target"], t["goal"], t["measured"], "PASS" if t["pass"] else "FAIL")
    console.print(t2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="model size factor (params ~ scale^3)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-out"), help="cache and results folder"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="reads per measurement (best is kept)"
    )
    parser.add_argument(
        "--write-repeat",
        type=int,
        default=2,
        help=f"writes per measurement (best is kept; one only when it takes > {SLOW_WRITE_S:g}s)",
    )
    parser.add_argument("--corpus", action="append", help="only these corpora (repeatable)")
    parser.add_argument(
        "--experiments", action="store_true", help="also run other StoreConfig values"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the written stores under <out>/work"
    )
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console(width=160)
    started = time.perf_counter()
    corpora = build_corpora(args.out, args.scale, log=console.print)
    if args.corpus:
        corpora = [c for c in corpora if c.name in args.corpus]
    work = args.out / "work"
    methods = standard_methods() + (experiment_methods() if args.experiments else [])
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "scale": args.scale,
        "repeat": args.repeat,
        "corpora": {},
    }
    for corpus in corpora:
        console.print(f"[bold]{corpus.name}[/]: measuring {len(methods)} methods ...")
        rows: dict[str, dict[str, Any]] = {}
        for method in methods:
            t0 = time.perf_counter()
            rows[method.name] = run_method(method, corpus, work, args.repeat, args.write_repeat)
            console.print(f"  {method.name}: {time.perf_counter() - t0:.1f}s")
        limit = order0_limit(corpus)
        targets = evaluate_targets(corpus, rows, limit)
        render(
            corpus,
            {k: v for k, v in rows.items() if v["kind"] != "experiment"},
            limit,
            targets,
            console,
        )
        if args.experiments:
            render_experiments(corpus, rows, console)
        report["corpora"][corpus.name] = {
            "description": corpus.description,
            "checkpoints": corpus.names,
            "references": corpus.references,
            "raw_bytes": corpus.raw_bytes,
            "largest_tensor_bytes": corpus.largest_tensor,
            "info": corpus.info,
            "methods": rows,
            "order0_limit": limit,
            "targets": targets,
        }
        if not args.keep:
            shutil.rmtree(work / corpus.name, ignore_errors=True)
    report["total_seconds"] = time.perf_counter() - started
    out = args.out / "storage.json"
    out.write_text(json.dumps(report, indent=1, default=str))
    console.print(f"total {report['total_seconds']:.0f}s; results in {out}")
    return 0


def render_experiments(corpus: Corpus, rows: dict[str, dict[str, Any]], console) -> None:
    from rich.table import Table

    ref = rows["safetensors"]
    table = Table(title=f"{corpus.name}: other StoreConfig values", title_justify="left")
    for col in (
        "config",
        "stored MB",
        "ratio",
        "write",
        "read newest",
        "read oldest",
        "peak MB",
        "chunks",
    ):
        table.add_column(col, justify="left" if col == "config" else "right")
    for name, r in rows.items():
        if r["kind"] not in ("coral", "experiment"):
            continue
        table.add_row(
            name,
            f"{r['stored_bytes'] / 1e6:.2f}",
            f"{r['ratio']:.2f}",
            _fmt_rel(r["write_s"] / ref["write_s"]),
            _fmt_rel(r["read_newest_s"] / ref["read_newest_s"]),
            _fmt_rel(r["read_oldest_s"] / ref["read_oldest_s"]),
            f"{r['write_peak_rss_bytes'] / 1e6:.0f}",
            " ".join(f"{k}={v}" for k, v in sorted(r.get("encodings", {}).items())),
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
