"""Three-way merge of tensor snapshots: fast-forward, conflict detection, strategy resolution.

Per tensor name, with B = the merge base's entry and the sides O (HEAD, "ours") and T…
(the merged refs, "theirs"): a side *changed* the tensor when its entry differs from B's.
No change → B; all changes agree → that change; otherwise it is a conflict, resolved by the
strategy: `fail` raises MergeConflictError naming every conflict, `ours` / `theirs` pick a
side, and the math strategies (average, weighted, uniform_soup, greedy_soup, ties, dare_ties)
combine the sides' values in float64 and cast back. Tensors those cannot combine (integer or
bool dtypes, shape or dtype differences, deleted on one side) keep ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coral.core.dtypes import is_float, numpy_dtype
from coral.core.weight_tensor import WeightMetadata, WeightTensor
from coral.errors import MergeConflictError
from coral.version_control import history
from coral.version_control.errors import DirtyStagingError
from coral.version_control.merge_strategies import (
    InvalidMergeStrategyError,
    combine,
    mean,
    normalize_strategy,
)
from coral.version_control.objects import Tree, TreeEntry
from coral.version_control.refs import HeadState
from coral.version_control.repo_protocol import MergeableRepository
from coral.version_control.writer import merge_files


class MergeResult(str):
    """The resulting commit hash (a `str`), with what the merge did as attributes."""

    commit_hash: str
    fast_forward: bool
    up_to_date: bool
    strategy: str
    base: str | None
    conflicts: list[str]
    resolutions: dict[str, str]
    details: dict[str, Any]

    def __new__(cls, commit_hash: str, **info: Any) -> MergeResult:
        obj = super().__new__(cls, commit_hash)
        obj.commit_hash = commit_hash
        obj.fast_forward = bool(info.get("fast_forward", False))
        obj.up_to_date = bool(info.get("up_to_date", False))
        obj.strategy = str(info.get("strategy", ""))
        obj.base = info.get("base")
        obj.conflicts = list(info.get("conflicts", []))
        obj.resolutions = dict(info.get("resolutions", {}))
        obj.details = dict(info.get("details", {}))
        return obj

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit_hash": self.commit_hash,
            "fast_forward": self.fast_forward,
            "up_to_date": self.up_to_date,
            "strategy": self.strategy,
            "base": self.base,
            "conflicts": self.conflicts,
            "resolutions": self.resolutions,
            "details": self.details,
        }


@dataclass
class _Plan:
    """The merged tree being built: resolved entries plus conflicts still to combine."""

    entries: dict[str, TreeEntry] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    resolutions: dict[str, str] = field(default_factory=dict)
    to_combine: list[str] = field(default_factory=list)


def merge_refs(
    repo: MergeableRepository,
    branch: str | Sequence[str],
    strategy: str = "fail",
    *,
    message: str | None = None,
    author: str | None = None,
    no_ff: bool = False,
    force: bool = False,
    **params: Any,
) -> MergeResult:
    """Merge `branch` (a ref, or several for a soup) into HEAD; returns a MergeResult."""
    strategy = normalize_strategy(strategy)
    names = [branch] if isinstance(branch, str) else list(branch)
    if not names:
        raise InvalidMergeStrategyError(
            "nothing to merge: no refs given", hint="pass a branch name"
        )
    if strategy == "greedy_soup" and not callable(params.get("evaluate")):
        raise InvalidMergeStrategyError(
            "greedy_soup needs evaluate=callable(weights) -> score (higher is better)"
        )
    head_commit = repo.refs.head().commit
    head_tree = repo.read_tree(repo.read_commit(head_commit).tree_id) if head_commit else Tree()
    if not force and not repo.staging.drop_if_unchanged(head_tree):  # staged = HEAD: dropped
        raise DirtyStagingError("cannot merge while changes are staged")
    theirs = [repo.resolve_ref(n) for n in names]
    with repo.write_lock():
        head = repo.refs.head()
        ours = head.commit
        read = repo.read_commit
        if ours is None:
            if len(theirs) != 1:
                raise InvalidMergeStrategyError("an unborn branch can only fast-forward to one ref")
            return _move_head(repo, head, theirs[0], f"merge {names[0]}: fast-forward", strategy)
        pending = [t for t in dict.fromkeys(theirs) if not history.is_ancestor(read, t, ours)]
        if not pending:
            return MergeResult(ours, up_to_date=True, strategy=strategy)
        if len(pending) == 1 and not no_ff and history.is_ancestor(read, ours, pending[0]):
            return _move_head(repo, head, pending[0], f"merge {names[0]}: fast-forward", strategy)
        base: str | None = ours
        for t in pending:
            base = history.merge_base(read, base, t) if base else None
            if base is None:
                break
        base_tree = repo.read_tree(read(base).tree_id) if base else Tree()
        sides = [repo.read_tree(read(c).tree_id) for c in [ours, *pending]]
        plan = _three_way(base_tree, sides, strategy)
        if strategy == "fail" and plan.conflicts:
            shown = ", ".join(plan.conflicts[:10]) + (" ..." if len(plan.conflicts) > 10 else "")
            raise MergeConflictError(
                f"merge of {', '.join(names)} conflicts on {len(plan.conflicts)} tensor(s) changed "
                f"differently on both sides: {shown}"
            )
        details: dict[str, Any] = {}
        if plan.to_combine:
            combined = _combine(repo, plan, base_tree, sides, strategy, params, details)
            entries = [plan.entries[n] for n in combined]
            ids = repo.store.store_many(
                [(w, plan.entries[n].tensor_id) for n, w in combined.items()]
            )
            for entry, tid in zip(entries, ids, strict=True):
                entry.tensor_id = tid
        files, file_conflicts = merge_files(base_tree, sides)
        tree = Tree(plan.entries, files)
        if file_conflicts:
            details["file_conflicts"] = file_conflicts  # ours kept
        label = ", ".join(names)
        meta = {
            "merge": {
                "strategy": strategy,
                "branches": names,
                "base": base,
                "conflicts": plan.conflicts,
                "resolutions": plan.resolutions,
                "params": _jsonable_params(params),
                **details,
            }
        }
        commit = repo.writer.write_commit(
            tree,
            [ours, *pending],
            message or f"Merge {label} into {head.branch or 'HEAD'} (strategy: {strategy})",
            author,
            meta,
        )
        with repo.database.transaction() as tx:
            repo.refs.update_head(tx, commit.commit_hash, head, f"merge {label}: {strategy}")
    return MergeResult(
        commit.commit_hash,
        strategy=strategy,
        base=base,
        conflicts=plan.conflicts,
        resolutions=plan.resolutions,
        details=details,
    )


def _move_head(
    repo: MergeableRepository, head: HeadState, target: str, message: str, strategy: str
) -> MergeResult:
    with repo.database.transaction() as tx:
        repo.refs.update_head(tx, target, head, message)
    return MergeResult(target, fast_forward=True, strategy=strategy, base=head.commit)


def _key(entry: TreeEntry | None) -> str | None:
    return None if entry is None else json.dumps(entry.to_dict(), sort_keys=True)


def _combinable(entries: Sequence[TreeEntry | None]) -> str | None:
    """Why these sides cannot be combined numerically (None when they can)."""
    if any(e is None for e in entries):
        return "deleted on one side"
    first = entries[0]
    assert first is not None
    if any(e is not None and (e.shape != first.shape or e.dtype != first.dtype) for e in entries):
        return "shape or dtype differs"
    if not (is_float(first.dtype) or first.dtype.startswith("complex")):
        return f"{first.dtype} values cannot be averaged"
    return None


def _three_way(base: Tree, sides: list[Tree], strategy: str) -> _Plan:
    plan = _Plan()
    names = set(base.entries).union(*(s.entries for s in sides))
    for name in sorted(names):
        b = base.entries.get(name)
        vals = [s.entries.get(name) for s in sides]
        changed = {_key(v): v for v in vals if _key(v) != _key(b)}
        if not changed:
            result: TreeEntry | None = b
        elif len(changed) == 1:
            result = next(iter(changed.values()))
        else:
            plan.conflicts.append(name)
            result = _resolve_conflict(plan, name, vals, strategy)
        if result is not None:
            plan.entries[name] = TreeEntry(**{**result.__dict__, "extra": dict(result.extra)})
    return plan


def _resolve_conflict(
    plan: _Plan, name: str, vals: list[TreeEntry | None], strategy: str
) -> TreeEntry | None:
    if strategy in ("fail", "ours"):
        plan.resolutions[name] = "ours"
        return vals[0]
    if strategy == "theirs":
        plan.resolutions[name] = "theirs"
        return vals[-1]
    reason = _combinable(vals)
    if reason is not None:
        plan.resolutions[name] = f"ours ({reason})"
        return vals[0]
    plan.resolutions[name] = strategy
    plan.to_combine.append(name)
    return vals[0]


def _load64(repo: MergeableRepository, entry: TreeEntry) -> np.ndarray:
    data = repo.store.load(entry.tensor_id).data
    return data.astype(np.complex128 if np.iscomplexobj(data) else np.float64)


def _cast(values: np.ndarray, entry: TreeEntry) -> WeightTensor:
    meta = WeightMetadata(
        name=entry.name,
        shape=entry.shape,
        dtype=numpy_dtype(entry.dtype),
        layer_type=entry.layer_type,
        model_name=entry.model_name,
        extra=dict(entry.extra),
    )
    return WeightTensor(values.astype(numpy_dtype(entry.dtype)), meta)


def _combine(
    repo: MergeableRepository,
    plan: _Plan,
    base: Tree,
    sides: list[Tree],
    strategy: str,
    params: dict[str, Any],
    details: dict[str, Any],
) -> dict[str, WeightTensor]:
    """Values of every conflicting tensor that the strategy combines."""
    if strategy == "greedy_soup":
        return _greedy_soup(repo, plan, sides, params["evaluate"], details)
    out: dict[str, WeightTensor] = {}
    for name in plan.to_combine:
        b = base.entries.get(name)
        arrays = [_load64(repo, s.entries[name]) for s in sides]
        base_arr = (
            _load64(repo, b) if b is not None and b.shape == sides[0].entries[name].shape else None
        )
        merged = combine(strategy, name, base_arr, arrays, params)
        out[name] = _cast(merged, plan.entries[name])
    return out


def _greedy_soup(
    repo: MergeableRepository,
    plan: _Plan,
    sides: list[Tree],
    evaluate: Callable[[dict[str, WeightTensor]], float],
    details: dict[str, Any],
) -> dict[str, WeightTensor]:
    """Greedy soup: rank the sides by score, then add each to the soup if the score of the
    resulting merge does not drop (Wortsman et al., 2022)."""
    arrays = {n: [_load64(repo, s.entries[n]) for s in sides] for n in plan.to_combine}
    fixed = {n: e for n, e in plan.entries.items() if n not in arrays}

    def model(soup: list[int]) -> dict[str, WeightTensor]:
        weights = {n: repo.load_entry(e) for n, e in fixed.items()}
        for n, vals in arrays.items():
            weights[n] = _cast(mean([vals[i] for i in soup]), plan.entries[n])
        return weights

    scores = [float(evaluate(model([i]))) for i in range(len(sides))]
    order = sorted(range(len(sides)), key=lambda i: -scores[i])
    soup = [order[0]]
    best = scores[order[0]]
    for i in order[1:]:
        score = float(evaluate(model([*soup, i])))
        if score >= best:
            soup.append(i)
            best = score
    details["greedy_soup"] = {"scores": scores, "order": order, "kept": sorted(soup), "score": best}
    return {n: _cast(mean([vals[i] for i in soup]), plan.entries[n]) for n, vals in arrays.items()}


def _jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if callable(v):
            out[k] = getattr(v, "__name__", "callable")
            continue
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            v = repr(v)
        out[k] = list(v) if isinstance(v, tuple) else v
    return out
