"""`coral optimize`: what other storage settings would cost this repository, and repacking it
under a settings profile.

`analyze_storage` trial-encodes a seeded sample of the repository's tensors (see
`optimize_trials.py`) under each candidate setting — every compression mode, chunk sizes,
delta-chain depths, similarity thresholds, one at a time, and each settings profile — and
scales the measured bytes per layer type to what the repository stores now. It adds which
tensors deduplicate or delta well (from `storage_report`) and what `gc` would free now (its
dry run), and recommends the profile with the smallest estimate.

`apply_profile` (`optimize_apply.py`) repacks the repository under a profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from coral.core.units import human_bytes
from coral.errors import CoralError
from coral.porcelain.optimize_trials import (
    LAYER_TYPES,
    SEED,
    Lineage,
    Trial,
    TrialSet,
    check_sample,
    choose_sample,
    lineages,
    run_trials,
    trial_set,
)
from coral.porcelain.storage_report import TensorStorage, storage_report
from coral.storage.config import MODES, StoreConfig
from coral.version_control.progress import Progress
from coral.version_control.repository import Repository

SIMILARITY_KEY = "similarity.threshold"
ENCODING_KEYS = (  # what `--apply` always writes: every setting that changes how bytes are stored
    "storage.mode",
    "storage.chunk_bytes",
    "storage.max_chain_depth",
    "storage.reverse_deltas",
    SIMILARITY_KEY,
)
CHUNK_SIZES = (1 << 20, 4 << 20, 16 << 20)
CHAIN_DEPTHS = (4, 8, 16, 32, 64)
THRESHOLDS = (0.9, 0.95, 0.99, 0.999)
MARGINAL = 0.01  # a profile saving less than this share is not worth a repack


# -- settings ---------------------------------------------------------------------------------
def profile_names(repo: Repository) -> list[str]:
    """The built-in profiles, then the repository's own."""
    from coral.porcelain.profiles import list_profiles

    return [p.name for p in list_profiles(repo)]


def profile_target(repo: Repository, name: str) -> dict[str, Any]:
    """The settings `--apply NAME` writes, flattened: the profile's over the built-in default
    of every encoding setting it leaves out (so `default` undoes an earlier `archive`)."""
    from coral.porcelain.config_keys import known_settings
    from coral.porcelain.profiles import profile_settings

    known = known_settings()
    out = {key: known[key].default for key in ENCODING_KEYS}
    out.update(profile_settings(repo, name))
    return out


def current_settings(repo: Repository) -> dict[str, Any]:
    """The storage and similarity settings in effect, flattened ("storage.mode": "default").
    A chain depth left to the mode's default stays 0, as in the config file."""
    from coral.version_control.config_profiles import similarity_threshold

    config = repo.store.config
    out: dict[str, Any] = {f"storage.{f.name}": getattr(config, f.name) for f in fields(config)}
    out["storage.max_chain_depth"] = _section(repo.config, "storage").get("max_chain_depth", 0)
    out[SIMILARITY_KEY] = similarity_threshold(repo.config)
    return out


def _section(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name, {})
    return dict(value) if isinstance(value, Mapping) else {}


def store_config(settings: Mapping[str, Any]) -> StoreConfig:
    """The StoreConfig of flattened settings (their "storage.*" keys)."""
    storage = {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith("storage.")}
    try:
        return StoreConfig(**storage)
    except (TypeError, ValueError) as exc:
        raise CoralError(
            f"bad storage settings: {exc}", hint="`coral config profile show NAME` lists them"
        ) from exc


def threshold_of(settings: Mapping[str, Any]) -> float:
    from coral.version_control.config_profiles import similarity_threshold

    return similarity_threshold({"similarity": {"threshold": settings[SIMILARITY_KEY]}})


def shown_value(key: str, value: Any) -> str:
    """A setting's value for people (chunk sizes in MiB)."""
    if key == "storage.chunk_bytes" and isinstance(value, int):
        return human_bytes(value)
    if key == "storage.max_chain_depth" and value == 0:
        return "0 (auto)"
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- analysis ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SettingEstimate:
    """Estimated stored bytes of the repository with one setting changed (or none)."""

    key: str
    value: Any
    current: bool
    estimated_bytes: int
    by_layer: dict[str, int]
    saving: int  # bytes below the current settings' estimate (< 0: more)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "current": self.current,
            "estimated_bytes": self.estimated_bytes,
            "saving": self.saving,
            "by_layer": dict(self.by_layer),
        }


@dataclass(frozen=True)
class LayerAdvice:
    """One layer type: what it stores now and the best single-setting change for it."""

    layer: str
    tensors: int  # distinct stored tensors of this type
    stored_bytes: int
    sampled: int  # of them in the sample
    best_key: str | None
    best_value: Any
    best_bytes: int
    saving: int

    @property
    def best(self) -> str | None:
        if self.best_key is None:
            return None
        return f"{self.best_key.rsplit('.', 1)[-1]}={shown_value(self.best_key, self.best_value)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "tensors": self.tensors,
            "stored_bytes": self.stored_bytes,
            "sampled": self.sampled,
            "best": None
            if self.best_key is None
            else {"key": self.best_key, "value": self.best_value},
            "estimated_bytes": self.best_bytes,
            "saving": self.saving,
        }


@dataclass(frozen=True)
class TensorEfficiency:
    """One tensor name over history: its versions, how many are distinct, how many are deltas,
    and logical bytes (every version) against stored bytes."""

    name: str
    layer: str
    versions: int
    distinct: int
    deltas: int
    logical_bytes: int
    stored_bytes: int

    @property
    def ratio(self) -> float:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 0.0

    @property
    def how(self) -> str:
        parts = []
        if self.versions > self.distinct:
            parts.append("dedup")
        if self.deltas:
            parts.append("delta")
        return "+".join(parts) or "compression"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer": self.layer,
            "versions": self.versions,
            "distinct": self.distinct,
            "deltas": self.deltas,
            "logical_bytes": self.logical_bytes,
            "stored_bytes": self.stored_bytes,
            "ratio": self.ratio,
            "how": self.how,
        }


@dataclass(frozen=True)
class ProfileEstimate:
    """A profile's settings (as `--apply` writes them), its estimate, and whether they are
    the settings in effect now."""

    name: str
    settings: dict[str, Any]
    estimated_bytes: int
    saving: int
    in_effect: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "settings": dict(self.settings),
            "estimated_bytes": self.estimated_bytes,
            "saving": self.saving,
            "in_effect": self.in_effect,
        }


@dataclass
class OptimizeAnalysis:
    """`coral optimize --analyze`: measured estimates under other settings, and advice."""

    lineages: int  # tensor names over history
    sampled_lineages: int
    sampled_tensors: int  # tensors trial-encoded (sample versions and similar tensors)
    sample_bytes: int  # their logical bytes
    trials: int
    stored_bytes: int  # distinct tensors on disk now
    current: dict[str, Any]
    settings: list[SettingEstimate] = field(default_factory=list)
    layers: list[LayerAdvice] = field(default_factory=list)
    tensors: list[TensorEfficiency] = field(default_factory=list)
    profiles: list[ProfileEstimate] = field(default_factory=list)
    gc_removed: dict[str, int] = field(default_factory=dict)
    gc_freed_bytes: int = 0
    seed: int = SEED

    @property
    def marginal(self) -> bool:
        """Whether no profile saves MARGINAL or more of what is stored."""
        best = max((p.saving for p in self.profiles), default=0)
        return best < MARGINAL * max(1, self.stored_bytes)

    @property
    def recommended(self) -> ProfileEstimate | None:
        """The profile with the smallest estimate; when none saves MARGINAL, the one whose
        settings are in effect (if any): a repack is not worth it. None without profiles."""
        if not self.profiles:
            return None
        kept = [p for p in self.profiles if p.in_effect]
        pool = kept if self.marginal and kept else self.profiles
        return min(pool, key=lambda p: p.estimated_bytes)

    def to_dict(self) -> dict[str, Any]:
        best = self.recommended
        return {
            "lineages": self.lineages,
            "sampled_lineages": self.sampled_lineages,
            "sampled_tensors": self.sampled_tensors,
            "sample_bytes": self.sample_bytes,
            "seed": self.seed,
            "trials": self.trials,
            "stored_bytes": self.stored_bytes,
            "current": dict(self.current),
            "settings": [s.to_dict() for s in self.settings],
            "layers": [ly.to_dict() for ly in self.layers],
            "tensors": [t.to_dict() for t in self.tensors],
            "profiles": [p.to_dict() for p in self.profiles],
            "recommended": None if best is None else best.name,
            "recommended_command": None if best is None else f"coral optimize --apply {best.name}",
            "marginal": self.marginal,
            "gc": {"removed": dict(self.gc_removed), "freed_bytes": self.gc_freed_bytes},
        }


def _trials(current: dict[str, Any], profiles: Mapping[str, dict[str, Any]]) -> list[Trial]:
    """The current settings first, then each value of one setting at a time, then each profile
    (`run_trials` encodes trials with equal settings once)."""
    wanted: list[tuple[str, Any, Mapping[str, Any]]] = [("", None, {})]
    for key, values in (
        ("storage.mode", MODES),
        ("storage.chunk_bytes", CHUNK_SIZES),
        ("storage.max_chain_depth", CHAIN_DEPTHS),
        (SIMILARITY_KEY, THRESHOLDS),
    ):
        wanted += [(key, value, {key: value}) for value in values]
    wanted += [("profile", name, settings) for name, settings in profiles.items()]
    out = []
    for key, value, change in wanted:
        settings = {**current, **change}
        out.append(Trial(key, value, store_config(settings), threshold_of(settings)))
    return out


def _efficiency(
    distinct: list[TensorStorage], layers: Mapping[str, str], top: int
) -> list[TensorEfficiency]:
    """Per tensor name, the best ratios of logical (every version) to stored bytes."""
    grouped: dict[str, list[TensorStorage]] = {}
    for t in distinct:
        grouped.setdefault(t.name, []).append(t)
    rows = [
        TensorEfficiency(
            name,
            layers.get(ts[0].tensor_id, "other"),
            sum(t.versions for t in ts),
            len(ts),
            sum(t.encoding not in ("full", "empty") for t in ts),
            sum(t.versions * t.logical_bytes for t in ts),
            sum(t.stored_bytes for t in ts),
        )
        for name, ts in grouped.items()
    ]
    rows = [r for r in rows if r.stored_bytes and r.versions > 1]
    rows.sort(key=lambda r: (-r.ratio, r.name))
    return rows[:top]


@dataclass
class _Measured:
    """A sample's trial encodes, scaled to the repository: estimated bytes per trial and
    layer type, and what each layer type stores now."""

    found: list[Lineage]
    chosen: list[Lineage]
    tensors: TrialSet
    layer_of: dict[str, str]  # tensor id -> layer type, for every tensor in history
    distinct: list[TensorStorage]
    stored: dict[str, int]  # layer type -> stored bytes now
    counts: dict[str, int]  # layer type -> distinct tensors
    estimates: dict[Trial, dict[str, int]]


def measure(
    repo: Repository, trials: list[Trial], sample: int | float | None, progress: Progress | None
) -> _Measured:
    """Trial-encode the sample under each trial (the first: the current settings) and scale
    the bytes per layer type to what the repository stores now."""
    check_sample(sample)
    repo.store.wait_for_maintenance()  # measure settled packs
    found = lineages(repo)
    chosen = choose_sample(found, sample)
    names = {t: (lin.name, lin.layer) for lin in found for t in lin.versions}
    tensors = trial_set(repo, chosen, names, min(t.threshold for t in trials))
    measured = run_trials(repo, tensors, trials, progress)
    layer_of = {t: layer for t, (_, layer) in names.items()}
    distinct = storage_report(repo, top=1 << 62).largest
    stored = dict.fromkeys(LAYER_TYPES, 0)
    counts = dict.fromkeys(LAYER_TYPES, 0)
    for t in distinct:
        stored[layer_of.get(t.tensor_id, "other")] += t.stored_bytes
        counts[layer_of.get(t.tensor_id, "other")] += 1
    baseline = measured[trials[0]]
    estimates = {
        trial: {
            ly: round(stored[ly] * got[ly] / baseline[ly]) if baseline[ly] else stored[ly]
            for ly in LAYER_TYPES
        }
        for trial, got in measured.items()
    }
    return _Measured(found, chosen, tensors, layer_of, distinct, stored, counts, estimates)


def analyze_storage(
    repo: Repository,
    *,
    sample: int | float | None = None,
    top: int = 10,
    progress: Progress | None = None,
) -> OptimizeAnalysis:
    """Estimated stored bytes under other settings, measured by trial-encoding a seeded sample
    (`sample`: an int counts tensor names, a float is a fraction of them, None takes up to
    32 MiB); the
    tensors that deduplicate or delta well; what gc would free now."""
    profiles = {name: profile_target(repo, name) for name in profile_names(repo)}
    current = current_settings(repo)
    trials = _trials(current, profiles)
    m = measure(repo, trials, sample, progress)
    now = sum(m.stored.values())
    analysis = OptimizeAnalysis(
        lineages=len(m.found),
        sampled_lineages=len(m.chosen),
        sampled_tensors=len(m.tensors.items),
        sample_bytes=sum(repo.store.manifest(i.tensor_id).nbytes for i in m.tensors.items),
        trials=len({(t.config, t.threshold) for t in trials}),
        stored_bytes=now,
        current=current,
    )
    in_effect = (trials[0].config, trials[0].threshold)
    for trial in trials[1:]:
        est = m.estimates[trial]
        total = sum(est.values())
        if trial.key == "profile":
            name, same = str(trial.value), (trial.config, trial.threshold) == in_effect
            analysis.profiles.append(
                ProfileEstimate(name, profiles[name], total, now - total, same)
            )
        else:
            is_now = _is_current(current, trial.key, trial.value)
            analysis.settings.append(
                SettingEstimate(trial.key, trial.value, is_now, total, est, now - total)
            )
    analysis.layers = _layer_advice(m, analysis.settings)
    analysis.tensors = _efficiency(m.distinct, m.layer_of, top)
    gc = repo.gc(dry_run=True, progress=progress)
    analysis.gc_removed, analysis.gc_freed_bytes = dict(gc.removed), gc.freed_bytes
    return analysis


def _layer_advice(m: _Measured, settings: list[SettingEstimate]) -> list[LayerAdvice]:
    """Per layer type that stores anything: the single-setting change that saves it most."""
    sampled = dict.fromkeys(LAYER_TYPES, 0)
    for ly in m.tensors.layers.values():
        sampled[ly] += 1
    out = []
    for ly in LAYER_TYPES:
        if not m.counts[ly]:
            continue
        best = min(
            (s for s in settings if not s.current),
            key=lambda s: (s.by_layer[ly], s.key, str(s.value)),
            default=None,
        )
        now = m.stored[ly]
        if best is None or best.by_layer[ly] >= now:
            out.append(LayerAdvice(ly, m.counts[ly], now, sampled[ly], None, None, now, 0))
            continue
        saved = now - best.by_layer[ly]
        out.append(
            LayerAdvice(
                ly, m.counts[ly], now, sampled[ly], best.key, best.value, best.by_layer[ly], saved
            )
        )
    return out


def _is_current(current: Mapping[str, Any], key: str, value: Any) -> bool:
    now = current.get(key)
    if key == "storage.max_chain_depth" and now == 0:
        now = store_config(current).max_chain_depth
    return bool(now == value)
