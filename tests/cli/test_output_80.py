"""DESIGN §8 at 80 columns: tables fit, a tensor name is never broken or cut, hashes print at
10 characters, training state stays out of diffs unless asked for, model files diff as text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from coral.cli.main import app
from coral.version_control.repository import Repository

LAYERS = 12
NAMES = [
    f"encoder.layer.{i}.attention.output.{part}"
    for i in range(LAYERS)
    for part in ("dense.weight", "dense.bias", "LayerNorm.weight", "LayerNorm.bias")
]
HASH = re.compile(r"\b[0-9a-f]{7,64}\b")


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    repo = Repository.init(tmp_path / "repo")
    first = {
        n: rng.standard_normal((16, 16) if "weight" in n else 16).astype(np.float32) for n in NAMES
    }
    first["__optim__/0/state/0/exp_avg"] = np.zeros(16, np.float32)
    repo.add_all_weights(first)
    repo.add_file("config.json", b'{\n  "hidden_size": 16,\n  "layers": 12\n}\n')
    repo.commit("first")
    second = {n: a + np.float32(1e-3) for n, a in first.items() if "dense" in n}
    second["__optim__/0/state/0/exp_avg"] = np.ones(16, np.float32)
    repo.add_all_weights(second)
    repo.add_file("config.json", b'{\n  "hidden_size": 16,\n  "layers": 24\n}\n')
    repo.commit("second")
    repo.close()
    return tmp_path / "repo"


def run(repo_dir: Path, *args: str, columns: int = 80) -> str:
    res = CliRunner().invoke(app, ["-C", str(repo_dir), *args], env={"COLUMNS": str(columns)})
    assert res.exit_code == 0, res.output
    return res.stdout


def assert_fits(text: str, columns: int = 80) -> list[str]:
    lines = text.splitlines()
    too_long = [line for line in lines if cell_len(line) > columns]
    assert not too_long, too_long[:3]
    return lines


def names_intact(text: str, names: list[str]) -> None:
    words = set(text.split())
    missing = [n for n in names if n not in words]
    assert not missing, missing[:5]


def test_diff_at_80_columns_keeps_every_name_whole(repo_dir: Path) -> None:
    text = run(repo_dir, "diff", "HEAD~1", "HEAD")
    lines = assert_fits(text)
    changed = [n for n in NAMES if "dense" in n]
    names_intact(text, changed)
    assert len(lines) < len(changed) + 20  # one line per tensor, not a name over 7 lines
    assert "24 changed" in text and "__optim__" not in text  # training state left out


def test_diff_include_training_state_and_layers(repo_dir: Path) -> None:
    text = run(repo_dir, "diff", "HEAD~1", "HEAD", "--include-training-state")
    assert "__optim__/0/state/0/exp_avg" in text.split()
    only = run(repo_dir, "diff", "HEAD~1", "HEAD", "--layers", "encoder.layer.1.*")
    listed = [n for n in NAMES if n in only.split()]
    assert listed == [
        "encoder.layer.1.attention.output.dense.weight",
        "encoder.layer.1.attention.output.dense.bias",
    ]
    assert "2 changed" in only


def test_diff_shows_model_file_changes_as_text(repo_dir: Path) -> None:
    text = run(repo_dir, "diff", "HEAD~1", "HEAD")
    assert "config.json" in text
    assert '-  "layers": 12' in text and '+  "layers": 24' in text


def test_narrow_terminal_switches_to_records_without_cutting_names(repo_dir: Path) -> None:
    text = run(repo_dir, "diff", "HEAD~1", "HEAD", columns=40)
    names_intact(text, [n for n in NAMES if "dense" in n])


def test_show_and_stats_fit_and_print_hashes_at_10(repo_dir: Path) -> None:
    show = run(repo_dir, "show", "HEAD")
    assert_fits(show)
    names_intact(show, NAMES)
    assert "config.json" in show
    table_hashes = [h for line in show.splitlines()[1:] for h in HASH.findall(line)]
    assert table_hashes and all(len(h) == 10 for h in table_hashes)
    stats = run(repo_dir, "stats")
    assert_fits(stats)
    hashes = HASH.findall(stats)
    assert hashes and all(len(h) == 10 for h in hashes)
    assert "first" in stats and "second" in stats


def test_piped_output_without_columns_is_80_wide(repo_dir: Path) -> None:
    res = CliRunner().invoke(app, ["-C", str(repo_dir), "show", "HEAD"], env={"COLUMNS": ""})
    assert res.exit_code == 0
    assert_fits(res.stdout)


# -- a BERT the size of all-MiniLM-L6-v2's names, with Adam state -------------------------------

BERT_MODULES = [
    f"attention.self.{p}.{k}" for p in ("query", "key", "value") for k in ("weight", "bias")
] + [
    f"{m}.{k}"
    for m in (
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    )
    for k in ("weight", "bias")
]
BERT_OTHERS = [
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
    "pooler.dense.weight",
    "pooler.dense.bias",
    "embeddings.position_ids",
]
BERT = BERT_OTHERS[:-2] + [f"encoder.layer.{i}.{m}" for i in range(6) for m in BERT_MODULES]
BERT += BERT_OTHERS[-2:]  # 104 tensors, as all-MiniLM-L6-v2
ONE_ULP = "encoder.layer.5.output.dense.bias"  # 383 of its 384 elements move by one ulp
CHANGED = [f"encoder.layer.{i}.{m}" for i in range(6) for m in BERT_MODULES[i % 3 :: 3]][:31]
CHANGED.append(ONE_ULP)
ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{7,64}(?![0-9a-f])")


def bert_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in BERT:
        if name == ONE_ULP:
            out[name] = rng.standard_normal(384).astype(np.float32)
        elif name.endswith("position_ids"):
            out[name] = np.arange(16, dtype=np.int64)[None]
        else:
            out[name] = rng.standard_normal((8, 8) if "weight" in name else 8).astype(np.float32)
    return out


def adam_state(weights: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    """156 optimizer tensors: exp_avg and exp_avg_sq of 78 parameters."""
    state: dict[str, np.ndarray] = {}
    for i, name in enumerate([n for n in BERT if "position_ids" not in n][:78]):
        for moment in ("exp_avg", "exp_avg_sq"):
            state[f"__optim__/0/state/{i}/{moment}"] = np.full_like(weights[name], 0.1 * step)
    return state


def build_bert_repo(path: Path) -> Path:
    """HEAD~2 -> HEAD~1: 32 of 104 tensors changed (and all 156 optimizer tensors);
    HEAD~1 -> HEAD: one tensor added, one removed, one reshaped, one changed."""
    rng = np.random.default_rng(0)
    with Repository.init(path) as repo:
        first = bert_weights(rng)
        repo.add_all_weights({**first, **adam_state(first, 1)})
        repo.commit("step 100", metadata={"metrics": {"loss": 2.5}})
        second = dict(first)
        for name in CHANGED[:-1]:
            second[name] = first[name] + np.float32(1e-3) * rng.standard_normal(
                first[name].shape
            ).astype(np.float32)
        ulp = first[ONE_ULP].copy()
        ulp[1:] = np.nextafter(ulp[1:], np.float32(np.inf))
        second[ONE_ULP] = ulp
        metrics = {f"eval_metric_number_{i}": 0.5 + i / 100 for i in range(12)}
        repo.add_all_weights({**second, **adam_state(second, 2)})
        repo.commit("step 200", metadata={"metrics": metrics})
        repo.add_all_weights({"classifier.weight": np.ones((2, 8), np.float32)})
        repo.add_all_weights({"embeddings.position_embeddings.weight": np.ones((4, 8), np.float32)})
        repo.add_all_weights({"pooler.dense.weight": second["pooler.dense.weight"] * 2})
        repo.remove_weight("pooler.dense.bias")
        repo.commit("new head")
    return path


@pytest.fixture(scope="module")
def bert_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bert_repo(tmp_path_factory.mktemp("bert") / "repo")


def tokens(text: str) -> set[str]:
    return set(text.split())


def test_bert_diff_at_80_columns(bert_repo: Path) -> None:
    text = run(bert_repo, "diff", "HEAD~2", "HEAD~1")
    lines = assert_fits(text)
    assert lines[0] == "diff HEAD~2 -> HEAD~1: 32 changed, 0 added, 0 removed, 72 identical"
    missing = [n for n in CHANGED if n not in tokens(text)]
    assert not missing  # every name whole, on one line
    assert len(lines) < len(CHANGED) + 12  # one line per tensor
    assert "…" not in text and "__optim__" not in text  # no number cut, no training state
    assert "156 training-state tensors left out" in text


def test_bert_diff_piped_is_80_wide(bert_repo: Path) -> None:
    res = CliRunner().invoke(
        app, ["-C", str(bert_repo), "diff", "HEAD~2", "HEAD~1"], env={"COLUMNS": ""}
    )
    assert res.exit_code == 0, res.output
    assert_fits(res.stdout)
    assert "encoder.layer.1.attention.self.value.weight" in tokens(res.stdout)


def test_bert_diff_include_training_state(bert_repo: Path) -> None:
    text = run(bert_repo, "diff", "HEAD~2", "HEAD~1", "--include-training-state", columns=200)
    assert "188 changed" in text and "__optim__/0/state/0/exp_avg_sq" in tokens(text)
    data = json.loads(run(bert_repo, "diff", "HEAD~2", "HEAD~1", "--json"))
    assert data["categories"]["changed"] == 32
    assert not any(n.startswith("__optim__") for n in data["changed"])


def test_bert_diff_layers_globs_repeat(bert_repo: Path) -> None:
    text = run(
        bert_repo, "diff", "HEAD~2", "HEAD~1", "-l", "encoder.layer.0.*", "-l", "*.5.output.*"
    )
    assert (
        text.splitlines()[0] == "diff HEAD~2 -> HEAD~1: 7 changed, 0 added, 0 removed, 13 identical"
    )
    assert ONE_ULP in tokens(text)


def test_bert_ascii_at_80_columns_keeps_names_unambiguous(bert_repo: Path) -> None:
    text = run(bert_repo, "diff", "HEAD~2", "HEAD~1", "--ascii")
    lines = assert_fits(text)
    missing = [n for n in CHANGED if n not in tokens(text)]
    assert not missing
    assert not re.search(r"\be\.l\.", text)  # no abbreviated names
    grid = [line for line in lines if line.startswith("encoder.layer.") and "|" not in line]
    assert len(grid) == 6  # one row per block
    assert "72 identical tensors not drawn" in text


def test_show_and_log_at_80_columns(bert_repo: Path) -> None:
    show = run(bert_repo, "show", "HEAD~1")
    assert_fits(show)
    names_intact(show, BERT)
    assert "__optim__" not in show and "156 training-state tensors" in show
    full = run(bert_repo, "show", "HEAD~1", "--include-training-state", columns=200)
    assert "__optim__/0/state/77/exp_avg" in tokens(full)
    log = run(bert_repo, "log")
    lines = assert_fits(log)
    items = [f"eval_metric_number_{i}={0.5 + i / 100:.4g}" for i in range(12)]
    assert all(any(item in line for line in lines) for item in items)  # metrics wrapped whole
    tensor = run(bert_repo, "show", f"HEAD~1:{ONE_ULP}")
    assert_fits(tensor)
    hashes = ID.findall(show + log + tensor)
    assert hashes and {len(h) for h in hashes} == {10}


def test_experiments_and_publish_history_at_80_columns(bert_repo: Path, tmp_path: Path) -> None:
    from coral.experiments import ExperimentTracker

    with Repository(bert_repo) as repo:
        tracker = ExperimentTracker(repo)
        ids = []
        for i in range(3):
            exp = tracker.start(
                f"all-MiniLM-L6-v2-finetune-learning-rate-sweep-{i}",
                params={"learning_rate": 1e-4 * (i + 1), "scheduler": "cosine-with-restarts"},
            )
            for step in range(3):
                tracker.log("validation_loss", 1.0 / (step + 1) + i, step=step)
                tracker.log("train_accuracy_top1", 0.5 + step / 10, step=step)
            tracker.end("completed", commit_hash=repo.resolve_ref("HEAD~1"))
            ids.append(exp.experiment_id)
        tracker.close()
    outputs = [
        run(bert_repo, "experiment", "list"),
        run(bert_repo, "experiment", "best", "--metric", "validation_loss"),
        run(bert_repo, "experiment", "compare", *ids),
        run(bert_repo, "experiment", "show", ids[0]),
    ]
    run(bert_repo, "publish", "local", str(tmp_path / "export"))
    outputs.append(run(bert_repo, "publish", "history"))
    for text in outputs:
        assert_fits(text)
        assert "…" not in text
    names = [f"all-MiniLM-L6-v2-finetune-learning-rate-sweep-{i}" for i in range(3)]
    for text in outputs[:3]:
        names_intact(text, names)
    assert str(tmp_path / "export") in tokens(outputs[-1])
    hashes = [h for text in outputs for h in ID.findall(text) if h not in ids]
    assert hashes and {len(h) for h in hashes} == {10}  # commits at 10; experiment ids whole
