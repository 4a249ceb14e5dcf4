"""Trial encodes for `coral optimize --analyze`: a seeded sample of the repository's tensors,
re-encoded under each candidate setting in a scratch store, the records measured.

A *lineage* is one tensor name's distinct versions over history (oldest first); each version
is delta-encoded against the one before, as a commit does against its parent's same-named
tensor. The sample is a set of whole lineages (delta efficiency needs the versions together),
drawn with a fixed seed so repeated runs agree: one of each layer type first, then at random.
Each trial stores the same tensors (the sample, plus the similar tensors the fingerprint index
offers its lineages' first versions) under one `StoreConfig` and similarity threshold.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from coral.errors import CoralError, CorruptObjectError, ObjectNotFoundError
from coral.storage.config import StoreConfig
from coral.storage.reencode import Item, encode_into, measured_bytes, scratch_store
from coral.version_control.progress import Phase, Progress
from coral.version_control.repository import Repository

if TYPE_CHECKING:
    from coral.storage.fingerprint_index import FingerprintIndex

LAYER_TYPES = ("embedding", "attention", "mlp", "norm", "bias", "other")
SEED = 18  # the sample's seed: the same repository gives the same sample
SAMPLE_BYTES = 32 << 20  # default sample: whole lineages up to this many logical bytes
MIN_THRESHOLD = 0.9  # similar tensors offered to first versions: from this cosine up

_NORM = re.compile(r"norm|(^|[._])(ln|bn)(_?[a-z0-9]+)?([._]|$)")
_PATTERNS = (  # after norm and bias; first match wins, on the lowercased name
    ("embedding", re.compile(r"emb|(^|[._])(wte|wpe|lm_head)([._]|$)")),
    (
        "attention",
        re.compile(r"attn|attention|(^|[._])(q|k|v|o|qkv|query|key|value)(_proj)?([._]|$)"),
    ),
    (
        "mlp",
        re.compile(
            r"mlp|ffn|feed_?forward|intermediate"
            r"|(^|[._])(fc\d*|c_fc|c_proj|linear[12]|up_proj|down_proj|gate_proj|w[123])([._]|$)"
        ),
    ),
)


def layer_type(name: str, shape: Sequence[int], module: str | None = None) -> str:
    """The layer type of a tensor (one of LAYER_TYPES) from its name and, when recorded, the
    class of the module that owns it (`Embedding`, `LayerNorm`, ...)."""
    owner = (module or "").lower()
    for kind in ("embedding", "norm", "attention"):
        if kind in owner:
            return kind
    lowered = name.lower()
    if _NORM.search(lowered):
        return "norm"
    if re.search(r"(^|[._])bias$", lowered) or (len(shape) == 1 and lowered.endswith("bias")):
        return "bias"
    for kind, pattern in _PATTERNS:
        if pattern.search(lowered):
            return kind
    return "other"


@dataclass(frozen=True)
class Lineage:
    """One tensor name's distinct versions over history, oldest first."""

    name: str
    layer: str
    versions: tuple[str, ...]
    logical_bytes: int  # of the distinct versions


def lineages(repo: Repository) -> list[Lineage]:
    """Every tensor name of every commit reachable from a ref, with its distinct versions (a
    tensor id counts in the first lineage that holds it: it is stored once)."""
    commits = list(repo.iter_commits())
    commits.reverse()
    seen: set[str] = set()
    layers: dict[str, str] = {}
    versions: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for commit in commits:
        try:
            tree = repo.read_tree(commit.tree_id)
        except (ObjectNotFoundError, CorruptObjectError):
            continue  # a pruned commit's tree that gc took (fsck reports damage)
        for entry in tree.entries.values():
            if entry.tensor_id in seen:
                continue
            seen.add(entry.tensor_id)
            name = entry.name
            layers.setdefault(name, layer_type(name, entry.shape, entry.layer_type))
            versions.setdefault(name, []).append(entry.tensor_id)
            sizes[name] = sizes.get(name, 0) + entry.nbytes
    return [Lineage(n, layers[n], tuple(versions[n]), sizes[n]) for n in sorted(versions)]


def choose_sample(found: Sequence[Lineage], sample: int | float | None) -> list[Lineage]:
    """A seeded sample of lineages: an int is a count, a float in (0, 1] a fraction of them,
    None whole lineages up to SAMPLE_BYTES; one of each layer type comes first."""
    check_sample(sample)
    if not found:
        return []
    order = [found[i] for i in np.random.default_rng(SEED).permutation(len(found))]
    firsts: dict[str, Lineage] = {}
    for lin in order:
        firsts.setdefault(lin.layer, lin)
    ranked = list(firsts.values()) + [lin for lin in order if lin not in firsts.values()]
    if sample is not None:
        count = sample if isinstance(sample, int) else math.ceil(sample * len(found))
        return ranked[:count]
    chosen: list[Lineage] = []
    total = 0
    for lin in ranked:
        if chosen and total + lin.logical_bytes > SAMPLE_BYTES:
            continue
        chosen.append(lin)
        total += lin.logical_bytes
    return chosen


def check_sample(sample: int | float | None) -> None:
    """CoralError unless `sample` is None, a count >= 1 or a fraction in (0, 1]."""
    if sample is None:
        return
    ok = sample >= 1 if isinstance(sample, int) else 0 < sample <= 1
    if isinstance(sample, bool) or not ok:
        raise CoralError(
            f"bad sample {sample!r}",
            hint="give a count of tensor names (20) or a fraction of them (0.25)",
        )


@dataclass(frozen=True)
class Trial:
    """One candidate: the setting it changes (`key` = `value`; key "" for the current
    settings, "profile" for a profile by name), the store settings and the similarity
    threshold it encodes with."""

    key: str
    value: object
    config: StoreConfig
    threshold: float


@dataclass
class TrialSet:
    """What every trial encodes: the items of the sample lineages and of the similar tensors
    offered to their first versions, each tensor's layer type, and the offers (first version
    -> (similar tensor, estimated cosine))."""

    items: list[Item]
    layers: dict[str, str]
    offers: dict[str, tuple[str, float]] = field(default_factory=dict)

    def items_at(self, threshold: float) -> list[Item]:
        """The items with the offers at or above `threshold` taken as references."""
        out = []
        for item in self.items:
            offer = self.offers.get(item.tensor_id)
            if item.reference is None and offer is not None and offer[1] >= threshold:
                item = Item(item.tensor_id, offer[0])
            out.append(item)
        return out


def trial_set(
    repo: Repository,
    sample: Sequence[Lineage],
    names: dict[str, tuple[str, str]],
    floor: float = MIN_THRESHOLD,
) -> TrialSet:
    """The tensors of `sample` (references: the previous version) and, for each lineage's first
    version, the most similar other tensor the fingerprint index knows at similarity `floor` or
    more (`names`: tensor id -> (name, layer type) of every tensor in history)."""
    items: list[Item] = []
    layers: dict[str, str] = {}
    for lin in sample:
        prev = None
        for tid in lin.versions:
            items.append(Item(tid, prev))
            layers[tid] = lin.layer
            prev = tid
    out = TrialSet(items, layers)
    index = _similarity_index(repo, floor)
    if index is None:
        return out
    try:
        extra: list[Item] = []
        for lin in sample:
            head = lin.versions[0]
            own = set(lin.versions)
            found = index.find_similar(repo.store.load(head), exclude=head, limit=4)
            best = next(((t, c) for t, c in found if t not in own and t in names), None)
            if best is None:
                continue
            out.offers[head] = best
            if best[0] not in layers:
                layers[best[0]] = names[best[0]][1]
                extra.append(Item(best[0], None))
        out.items = extra + items  # offered tensors are stored first: references come first
    finally:
        index.close()
    return out


def _similarity_index(repo: Repository, floor: float) -> FingerprintIndex | None:
    """The repository's fingerprint index, read with threshold `floor` (None when there is
    none)."""
    if not repo.db_path.exists():
        return None
    try:
        from coral.storage.fingerprint_index import FingerprintIndex

        return FingerprintIndex(repo.db_path, similarity_threshold=floor)
    except Exception:  # derived data: without it the similarity trials are skipped
        return None


def run_trials(
    repo: Repository,
    tensors: TrialSet,
    trials: Iterable[Trial],
    progress: Progress | None = None,
) -> dict[Trial, dict[str, int]]:
    """Per trial, the bytes its records take per layer type (each in its own scratch store,
    under a temporary folder: the repository's store is only read)."""
    todo = list(trials)
    runs = list(dict.fromkeys((t.config, t.threshold) for t in todo))  # equal settings: once
    phase = Phase(progress, "trial encodes", len(runs) * len(tensors.items))
    results: dict[tuple[StoreConfig, float], dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="coral-optimize-") as tmp:
        for n, (config, threshold) in enumerate(runs):
            items = tensors.items_at(threshold)
            scratch = scratch_store(Path(tmp) / str(n), config)
            try:
                encode_into(scratch, repo.store.load, items, phase.advance)
                sizes = measured_bytes(scratch, [i.tensor_id for i in items])
            finally:
                scratch.close()
            per_layer = dict.fromkeys(LAYER_TYPES, 0)
            for tid, size in sizes.items():
                per_layer[tensors.layers[tid]] += size
            results[(config, threshold)] = per_layer
    phase.finish()
    return {t: results[(t.config, t.threshold)] for t in todo}
