"""Recording provenance (`coral commit|import --config --dataset --base`) and reading it back
(`coral provenance COMMIT --format text|json|dot|svg`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from safetensors.numpy import save_file

from coral.porcelain.provenance import lineage, provenance_for
from coral.utils.lineage_graph import lineage_dot, quote
from coral.version_control.provenance import dataset_record
from coral.version_control.repository import Repository
from tests.cli.conftest import assert_user_error
from tests.workflows.provenance.conftest import as_json, model


def test_commit_records_base_config_and_dataset_hashes(session, coral, work):
    doc = as_json(coral("provenance", "--json"))
    assert set(doc) == {
        "commit_hash",
        "depth",
        "truncated",
        "base",
        "config",
        "datasets",
        "lineage",
    }
    base_commit = as_json(coral("log", "--json"))[-1]["commit_hash"]
    assert doc["base"] == {"commit": base_commit, "ref": "base", "source": "given"}
    config = doc["config"]
    raw = (work / "train.yaml").read_bytes()
    assert config["blake3"] == blake3.blake3(raw).hexdigest()  # what b3sum prints
    assert config["bytes"] == len(raw) and config["path"] == "train.yaml"
    assert config["format"] == "yaml"
    assert config["content"] == {"lr": 0.001, "epochs": 3, "optimizer": {"name": "adam"}}
    folder, single = doc["datasets"]
    assert single == {
        "path": "data/train.csv",
        "bytes": 8,
        "files": 1,
        "hash": blake3.blake3(b"x,y\n1,2\n").hexdigest(),
    }
    assert folder["path"] == "data" and folder["files"] == 2 and folder["bytes"] == 16
    assert [n["depth"] for n in doc["lineage"]] == [0, 1]
    assert doc["lineage"][1]["base"] is None and doc["truncated"] is False


def test_dataset_folder_hash_is_stable_and_sees_every_change(work):
    first = dataset_record(work / "data")
    assert dataset_record(work / "data") == first
    (work / "data" / "sub" / "val.csv").write_text("x,y\n3,5\n")
    changed = dataset_record(work / "data")
    assert changed["hash"] != first["hash"] and changed["bytes"] == first["bytes"]
    (work / "data" / "sub" / "val.csv").rename(work / "data" / "sub" / "other.csv")
    assert dataset_record(work / "data")["hash"] != changed["hash"]  # names count too


def test_outside_base_name_and_bad_inputs_commit_nothing(session, coral, work):
    coral("add", "tuned2.safetensors")
    for args, fragment in (
        (("--dataset", "missing"), "missing"),
        (("--config", "nope.yaml"), "nope.yaml"),
        (("--base", "HEAD~9"), "HEAD~9"),
    ):
        assert_user_error(coral("commit", "-m", "x", *args), fragment)
    assert len(as_json(coral("log", "--json"))) == 2
    assert as_json(coral("status", "--json"))["staged"]["modified"] == [
        "head.weight"
    ]  # still staged
    result = coral("commit", "-m", "again", "--base", "org/model-7b")
    assert result.exit_code == 0, result.output
    assert as_json(coral("provenance", "--json"))["base"] == {
        "name": "org/model-7b",
        "source": "given",
    }


def test_import_records_provenance_and_hf_name_or_path(session, coral, work):
    folder = work / "hf"
    folder.mkdir()
    save_file(model(3), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "org/tiny", "n": 1}))
    result = coral("import", str(folder), "--config", "train.yaml", "--json")
    assert result.exit_code == 0, result.output
    doc = as_json(coral("provenance", "--json"))
    assert doc["base"] == {"name": "org/tiny", "source": "config.json"}
    assert doc["config"]["content"]["epochs"] == 3
    save_file(model(4), str(folder / "model.safetensors"))
    assert coral("import", str(folder), "--base", "base", "--dataset", "data").exit_code == 0
    doc = as_json(coral("provenance", "--json"))
    assert doc["base"]["ref"] == "base" and doc["datasets"][0]["files"] == 2  # --base wins


def test_text_shows_record_and_lineage_within_80_columns(session, coral):
    result = coral("provenance")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "base      base (" in out
    assert "config    train.yaml (" in out and "lr=0.001" in out and "optimizer.name=adam" in out
    assert "datasets  data: 2 files, 16 B, blake3 " in out and "data/train.csv: 1 file" in out
    assert "lineage (2 commits):" in out and "[base, config, 2 datasets]" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    old = coral("provenance", "HEAD~1", "--depth", "0")
    assert "lineage (1 commit):" in old.stdout and "base      (none recorded)" in old.stdout
    assert as_json(coral("provenance", "--depth", "0", "--json"))["truncated"] is True


def test_dot_is_quoted_and_draws_bases_configs_and_datasets(session, coral, work):
    coral("add", "tuned2.safetensors")
    tricky = 'say "hi" \\ back\nsecond line'
    assert coral("commit", "-m", tricky, "--base", 'hub/"odd" name').exit_code == 0
    result = coral("provenance", "--format", "dot")
    assert result.exit_code == 0, result.output
    dot = result.stdout
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert 'say \\"hi\\" \\\\ back' in dot and "second line" not in dot  # subject only
    assert quote('base:hub/"odd" name') in dot
    assert "shape=note" in dot and "shape=cylinder" in dot and "style=dashed" in dot
    assert quote("a\nb") == '"a\\nb"' and quote('x"\\') == '"x\\"\\\\"'
    if shutil.which("dot"):  # Graphviz itself accepts what Coral wrote
        check = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_base_outside_the_lineage_is_drawn_dashed(tmp_path):
    with Repository.init(tmp_path / "r") as repo:
        repo.add_all_weights(model(0))
        repo.commit("root")
        repo.create_branch("other")
        repo.checkout("other")
        repo.add_all_weights(model(5))
        other = repo.commit("other model")
        repo.checkout("main")
        repo.add_all_weights(model(1))
        meta = provenance_for(repo, base="other", config={"lr": 0.1, "layers": (2, 3)})
        tip = repo.commit("tuned from other", metadata=meta)
        result = lineage(repo, tip, depth=5)
        assert [(n.commit.commit_hash, n.depth) for n in result.nodes][-1] == (other, None)
        assert result.root.config["content"] == {"lr": 0.1, "layers": [2, 3]}
        assert result.root.config["format"] == "mapping"
        dot = lineage_dot(result)
        assert f'"c:{other}" -> "c:{tip}" [style=dashed, label="base"]' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_through_graphviz(session, coral, work):
    result = coral("provenance", "--format", "svg", "-o", str(work / "lineage.svg"))
    assert result.exit_code == 0, result.output
    svg = (work / "lineage.svg").read_text()
    assert "<svg" in svg and "base model" in svg
    assert "<svg" in coral("provenance", "-f", "svg").stdout


def test_svg_without_graphviz_and_bad_options_are_user_errors(session, coral, work):
    empty = work / "no-bin"
    empty.mkdir()
    result = coral("provenance", "--format", "svg", env={"PATH": str(empty)})
    assert_user_error(result, "Graphviz", "apt install graphviz", "--format dot")
    assert_user_error(coral("provenance", "--format", "png"), "png")
    assert_user_error(coral("provenance", "nope"), "nope")
    assert_user_error(coral("provenance", "--depth", "-1"), "depth")


def test_output_file_for_each_format(session, coral, work):
    for fmt in ("text", "json", "dot"):
        target = work / f"lineage.{fmt}"
        result = coral("provenance", "-f", fmt, "-o", str(target))
        assert result.exit_code == 0, result.output
        assert f"wrote {target}" in result.stdout.replace("\n", "")
    assert json.loads((work / "lineage.json").read_text())["depth"] == 20
    assert (work / "lineage.dot").read_text().startswith("digraph")
    assert "lineage (2 commits):" in (work / "lineage.text").read_text()


def test_subprocess_coral_commit_and_provenance(work: Path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "coral.cli.main", "-C", "repo", *args],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )

    (work / "repo").mkdir()
    assert run("init").returncode == 0
    assert run("import", "base.safetensors", "--base", "org/base-model").returncode == 0
    assert run("add", "tuned.safetensors").returncode == 0
    done = run("commit", "-m", "tune", "--dataset", "data", "--config", "train.yaml")
    assert done.returncode == 0, done.stderr
    doc = json.loads(run("provenance", "HEAD~1", "--json").stdout)
    assert doc["base"] == {"name": "org/base-model", "source": "given"}
    text = run("provenance").stdout
    assert "datasets  data: 2 files" in text and "lineage (2 commits):" in text
    bad = run("provenance", "-f", "gif")
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "hint: " in bad.stderr
