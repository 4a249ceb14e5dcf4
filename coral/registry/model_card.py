"""The Hugging Face model card (README.md) Coral writes when it publishes a commit.

The YAML front matter is built with `huggingface_hub.ModelCardData`, so it is the metadata the
Hub expects: `library_name`, `tags`, `base_model`, `metrics` and a `model-index` whose results
carry the published metrics. The body tells where the weights came from: the Coral commit, its
branch and tags, and the recent history that led to it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from coral.core.units import human_bytes
from coral.registry.snapshot import CommitSnapshot
from coral.version_control.objects import Commit

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

LIBRARY_NAME = "coral"
DEFAULT_TASK = "other"
DEFAULT_DATASET = ("custom", "Custom evaluation data")


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    return {
        str(k): v
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def build_model_card(
    repo_id: str,
    snapshot: CommitSnapshot,
    *,
    description: str | None = None,
    base_model: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    history: Sequence[Commit] = (),
    files: Sequence[str] = (),
) -> ModelCard:
    """A `huggingface_hub.ModelCard` for `snapshot` published as `repo_id`.

    `history` is the recent log (Coral `Commit` objects, newest first). The evaluation task and
    dataset of the model-index come from the commit's metadata keys `task` and `dataset` when
    set, else from neutral defaults (the Hub requires both).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    commit = snapshot.commit
    model_name = repo_id.rsplit("/", 1)[-1]
    numeric = _numeric_metrics(metrics or {})
    task = str(commit.metadata.get("task") or commit.metadata.get("pipeline_tag") or DEFAULT_TASK)
    dataset = commit.metadata.get("dataset")
    dataset_type, dataset_name = (str(dataset), str(dataset)) if dataset else DEFAULT_DATASET
    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            metric_type=name,
            metric_value=value,
            metric_name=name,
        )
        for name, value in numeric.items()
    ]
    card_data = ModelCardData(
        library_name=LIBRARY_NAME,
        tags=list(dict.fromkeys([LIBRARY_NAME, "safetensors", *(tags or [])])),
        base_model=base_model,
        metrics=list(numeric) or None,
        pipeline_tag=task if task != DEFAULT_TASK else None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results or None,
    )

    lines = [f"# {model_name}", ""]
    if description:
        lines += [description.strip(), ""]
    lines += [
        "## Model details",
        "",
        "| | |",
        "|---|---|",
        f"| Coral commit | `{commit.commit_hash}` |",
        f"| Message | {_md(commit.message)} |",
        f"| Author | {_md(commit.author)} |",
        f"| Date | {commit.datetime.strftime('%Y-%m-%d %H:%M:%S UTC')} |",
    ]
    if snapshot.branch:
        lines.append(f"| Branch | `{snapshot.branch}` |")
    if snapshot.tags:
        lines.append(f"| Tags | {', '.join(f'`{t}`' for t in snapshot.tags)} |")
    if base_model:
        lines.append(f"| Base model | [{base_model}](https://huggingface.co/{base_model}) |")
    dtypes = ", ".join(f"{name} ({count})" for name, count in snapshot.dtype_counts().items())
    lines += [
        f"| Tensors | {snapshot.weight_count} |",
        f"| Parameters | {snapshot.parameter_count:,} |",
        f"| Size | {human_bytes(snapshot.total_bytes)} |",
        f"| Dtypes | {dtypes or '-'} |",
        "",
    ]
    if numeric:
        lines += ["## Evaluation", "", "| Metric | Value |", "|---|---|"]
        lines += [f"| {_md(name)} | {value:g} |" for name, value in numeric.items()]
        lines.append("")
    if history:
        lines += [
            "## Version history",
            "",
            "Recent Coral commits leading to this version (newest first):",
            "",
            "| Commit | Date | Author | Message |",
            "|---|---|---|---|",
        ]
        for c in history:
            lines.append(
                f"| `{c.short_hash}` | {c.datetime.strftime('%Y-%m-%d %H:%M')} | {_md(c.author)} |"
                f" {_md(c.message)} |"
            )
        lines.append("")
    if files:
        lines += ["## Files", ""]
        lines += [f"- `{name}`" for name in files]
        lines.append("")
    weights_file = next((f for f in files if f.endswith(".index.json")), "model.safetensors")
    loader = (
        "from huggingface_hub import snapshot_download\n"
        "from coral.integrations.formats import load_weights\n\n"
        f'folder = snapshot_download("{repo_id}")\n'
        f'weights = load_weights(f"{{folder}}/{weights_file}")'
        if weights_file.endswith(".index.json")
        else "from huggingface_hub import hf_hub_download\n"
        "from safetensors.numpy import load_file\n\n"
        f'weights = load_file(hf_hub_download("{repo_id}", "model.safetensors"))'
    )
    lines += [
        "## Usage",
        "",
        "```python",
        loader,
        "```",
        "",
        f"Published with Coral {snapshot.coral_version}; "
        "`coral_metadata.json` records the commit, branch, tags and metrics.",
        "",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(content)
