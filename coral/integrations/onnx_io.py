"""ONNX in and out of Coral: a graph's initializers as weights, and a commit's weights written
into a given ONNX graph.

>>> weights = load_onnx_initializers("model.onnx")              # dict[str, np.ndarray], bit-exact
>>> report = export_onnx(repo, "v1.0", "template.onnx", "model-v1.0.onnx")

`export_onnx` keeps the template's graph and replaces each initializer whose name is a weight of
the commit (a tied weight's other names count too), after checking shape and dtype. The commit
it came from is recorded in the model's metadata (`coral.commit`, `coral.ref`, `coral.message`,
and `coral.history`: the last commits as JSON); `import_onnx` records the producer in the commit.
Torch models exported with `torch.onnx.export(..., dynamo=False)` keep their state_dict names
as initializer names; with constant folding, parameters a graph transforms (e.g. a transposed
MatMul weight) get generated names and stay as in the template (see `ExportReport.kept`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coral.core.dtypes import canonical_array, dtype_name
from coral.core.training_names import is_training_state
from coral.errors import CoralError, InvalidFileError, ShapeMismatchError

if TYPE_CHECKING:
    from coral.version_control.repository import Repository

HISTORY = 10  # commits `export_onnx` lists in the model's `coral.history`
# The imported model's graph, its initializers emptied: a model file of the commit, the
# template `export_onnx` uses when none is given (`coral export onnx REF OUT`).
GRAPH_FILE = "onnx/graph.onnx"
_DATA_FIELDS = (
    "raw_data",
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
    "external_data",
)
_EXTERNAL_DATA_BYTES = 1 << 30  # above this, write tensors beside the model (protobuf's 2 GiB cap)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is in the training extra
        raise CoralError(
            "ONNX support needs the onnx package", hint="pip install 'coral-vcs[training]'"
        ) from exc
    return onnx


def _load_model(path: str | os.PathLike[str]) -> Any:
    onnx = _onnx()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    try:
        return onnx.load(str(p), load_external_data=True)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise InvalidFileError(
            f"{p}: not a readable ONNX model ({type(exc).__name__}: {exc})"
        ) from exc


def load_onnx_initializers(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every initializer of an ONNX model (main graph; external data included), bit-exact."""
    return _initializers(_load_model(path), path)


def read_onnx(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(initializers, provenance) of an ONNX model, read once; see `onnx_provenance`."""
    model = _load_model(path)
    return _initializers(model, path), onnx_provenance(model)


def read_onnx_model(
    path: str | os.PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, Any], bytes]:
    """(initializers, provenance, the graph without initializer data) of an ONNX model, read
    once: what `coral import onnx` commits (the graph as model file `GRAPH_FILE`)."""
    model = _load_model(path)
    return _initializers(model, path), onnx_provenance(model), graph_without_data(model)


def graph_without_data(model: Any) -> bytes:
    """The model serialized with every initializer's values dropped (names, shapes and dtypes
    kept) and without the `coral.*` metadata an export adds (the commit records where it came
    from): a small template that the commit's weights fill again."""
    onnx = _onnx()
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    kept = [(p.key, p.value) for p in bare.metadata_props if not p.key.startswith("coral.")]
    del bare.metadata_props[:]
    for key, value in kept:
        bare.metadata_props.add(key=key, value=value)
    for init in bare.graph.initializer:
        for name in _DATA_FIELDS:
            init.ClearField(name)
        init.data_location = onnx.TensorProto.DEFAULT
    return bytes(bare.SerializeToString())


def _committed_graph(repo: Repository, commit_hash: str, ref: str) -> Any:
    """The ONNX graph `coral import onnx` stored with commit `ref`."""
    entry = repo.list_files(commit_hash).get(GRAPH_FILE)
    if entry is None:
        raise CoralError(
            f"{ref} holds no ONNX graph to export into (it was not imported from ONNX)",
            hint="give a graph of the same model: --template MODEL.onnx "
            "(e.g. from torch.onnx.export)",
        )
    from coral.version_control.objects import FILE

    return _onnx().load_model_from_string(repo.store.get_blob(FILE, entry.blob_id))


def onnx_provenance(model: Any) -> dict[str, Any]:
    """Who made an ONNX model: producer, versions, opsets, graph name, doc string (at most
    500 characters) and its metadata_props (`coral.commit` when Coral exported it)."""
    info: dict[str, Any] = {
        "producer": model.producer_name,
        "producer_version": model.producer_version,
        "ir_version": int(model.ir_version),
        "opsets": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "graph": model.graph.name,
    }
    if model.model_version:
        info["model_version"] = int(model.model_version)
    if model.domain:
        info["domain"] = model.domain
    if model.doc_string:
        info["doc_string"] = model.doc_string[:500]
    if model.metadata_props:
        info["metadata"] = {p.key: p.value for p in model.metadata_props}
    return info


def _initializers(model: Any, path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out: dict[str, np.ndarray] = {}
    for init in model.graph.initializer:
        if not init.name:
            raise InvalidFileError(f"{path}: an initializer has no name")
        out[init.name] = canonical_array(numpy_helper.to_array(init))
    for sparse in model.graph.sparse_initializer:
        dense = numpy_helper.to_array(sparse.values)
        arr = np.zeros(tuple(sparse.dims), dtype=dense.dtype)
        idx = numpy_helper.to_array(sparse.indices)
        if idx.ndim == 1:
            arr.reshape(-1)[idx] = dense
        else:
            arr[tuple(idx.T)] = dense
        out[sparse.values.name] = arr
    return out


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The model's metadata_props (where `export_onnx` records the commit)."""
    return {p.key: p.value for p in _load_model(path).metadata_props}


@dataclass
class ExportReport:
    """What `export_onnx` wrote: initializers replaced from the commit, kept from the template,
    and the commit's model weights the graph has no initializer for."""

    commit: str
    path: Path
    replaced: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def export_onnx(
    repo: Repository,
    ref: str,
    onnx_template_path: str | os.PathLike[str] | None,
    out_path: str | os.PathLike[str],
    *,
    strict: bool = False,
    history: int = HISTORY,
) -> ExportReport:
    """Write commit `ref`'s weights into the initializers of the template graph; save to out_path.
    Without a template, the graph `coral import onnx` committed (`GRAPH_FILE`) is used, and every
    initializer must then come from the commit.

    Every tensor is checked against its initializer's shape and dtype before anything is
    written (ShapeMismatchError naming the tensor). With `strict=True`, every model weight of
    the commit must land in the graph and every initializer must come from the commit. The
    model's metadata_props record `coral.commit`, `coral.ref`, `coral.message` and
    `coral.history` (JSON: the last `history` commits, newest first, with their subjects).
    """
    onnx = _onnx()
    from onnx import helper, numpy_helper

    commit_hash = repo.resolve_ref(ref)
    commit = repo.read_commit(commit_hash)
    committed = onnx_template_path is None
    if onnx_template_path is None:
        model = _committed_graph(repo, commit_hash, ref)
    else:
        model = _load_model(onnx_template_path)
    weights = {
        n: w
        for n, w in repo.get_all_weights(commit_hash, lazy=True).items()
        if not is_training_state(n)
    }
    record = commit.metadata.get("training") or {}
    aliases = dict(record.get("aliases") or {}) if isinstance(record, dict) else {}
    report = ExportReport(commit=commit_hash, path=Path(out_path))
    _undo_initializer_dedup(model, set(weights) | set(aliases))
    plan: list[tuple[int, str]] = []  # (initializer index, commit tensor), checked before writing
    mismatched: list[str] = []
    for i, init in enumerate(model.graph.initializer):
        source = init.name if init.name in weights else aliases.get(init.name)
        if source is None or source not in weights:
            report.kept.append(init.name)
            continue
        w = weights[source]
        want_dtype = dtype_name(helper.tensor_dtype_to_np_dtype(init.data_type))
        if tuple(init.dims) != tuple(w.shape) or want_dtype != w.metadata.dtype_name:
            via = f" (initializer {init.name!r})" if source != init.name else ""
            mismatched.append(
                f"tensor {source!r}{via} is {w.metadata.dtype_name}{list(w.shape)} in {ref} "
                f"but {want_dtype}{list(init.dims)} in the graph"
            )
            continue
        plan.append((i, source))
    if mismatched:
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise ShapeMismatchError(
            mismatched[0] + more,
            hint="export into a template made from the same architecture and dtype "
            "(`coral show REF` lists the commit's shapes); nothing was written",
        )
    for i, source in plan:
        init = model.graph.initializer[i]
        model.graph.initializer[i].CopyFrom(
            numpy_helper.from_array(weights[source].data, init.name)
        )
        report.replaced.append(init.name)
    used = {source for _, source in plan}
    report.unused = sorted(n for n in weights if n not in used)
    if committed and report.kept:
        raise CoralError(
            f"{ref} lacks {len(report.kept)} initializers of its ONNX graph "
            f"({', '.join(report.kept[:5])})",
            hint="give the original graph with --template MODEL.onnx; nothing was written",
        )
    if strict and (report.kept or report.unused):
        raise CoralError(
            f"{ref} and the ONNX graph do not match: "
            f"{len(report.kept)} initializers not in the commit "
            f"({', '.join(report.kept[:5])}), {len(report.unused)} weights not in the graph "
            f"({', '.join(report.unused[:5])})",
            hint="export the template with torch.onnx.export(..., do_constant_folding=False), "
            "or use strict=False",
        )
    props = {p.key: p.value for p in model.metadata_props}
    props.update(
        {
            "coral.commit": commit_hash,
            "coral.ref": ref,
            "coral.message": _subject(commit.message),
            "coral.history": json.dumps(
                [
                    {"commit": c.commit_hash, "message": _subject(c.message)}
                    for c in repo.log(max_commits=history, branch=commit_hash)
                ]
            ),
        }
    )
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    total = sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer) * 4
    if total > _EXTERNAL_DATA_BYTES:
        onnx.save_model(
            model,
            str(out),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=out.name + ".data",
        )
    else:
        onnx.save_model(model, str(out))
    return report


def _undo_initializer_dedup(model: Any, names: set[str]) -> None:
    """Give back their own initializers to weights the exporter merged into an identical one.

    torch's exporter stores initializers with equal values once and re-creates the others with
    `Identity` nodes (a fresh BatchNorm's running_var equals its weight, both ones). A new
    commit's values differ, so each such `Identity(init) -> name` whose output is a weight of the
    commit becomes an initializer of its own again.
    """
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        out = node.output[0] if len(node.output) == 1 else None
        if (
            node.op_type == "Identity"
            and len(node.input) == 1
            and node.input[0] in inits
            and out in names
            and out not in inits
        ):
            arr = numpy_helper.to_array(inits[node.input[0]])
            model.graph.initializer.append(numpy_helper.from_array(arr, out))
            inits[out] = model.graph.initializer[-1]
            continue
        keep.append(node)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)


def import_onnx(
    repo: Repository,
    path: str | os.PathLike[str],
    message: str | None = None,
    author: str | None = None,
) -> str:
    """Stage an ONNX model's initializers and commit them; returns the commit hash. The
    commit's metadata["import"]["onnx"] records who made the model (`onnx_provenance`)."""
    weights, info, graph = read_onnx_model(path)
    if not weights:
        raise CoralError(f"{path} has no initializers", hint="export the model with its weights")
    meta = {"import": {"source": str(path), "format": "onnx", "onnx": info}}
    repo.add_all_weights(weights)
    repo.add_file(GRAPH_FILE, graph)
    return str(repo.commit(message or f"Import {path}", author=author, metadata=meta))


def _subject(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0] if lines else ""
