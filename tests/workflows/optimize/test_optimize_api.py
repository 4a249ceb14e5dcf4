"""`coral.porcelain.optimize`: measured estimates, deterministic samples, bit-exact repacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coral.errors import CoralError
from coral.porcelain.optimize import analyze_storage
from coral.porcelain.optimize_apply import apply_profile
from coral.porcelain.optimize_trials import choose_sample, layer_type, lineages
from coral.porcelain.profiles import create_profile
from coral.version_control.repository import Repository
from tests.workflows.optimize.conftest import files, snapshot


@pytest.mark.parametrize(
    ("name", "shape", "module", "kind"),
    [
        ("model.embed_tokens.weight", (100, 8), None, "embedding"),
        ("transformer.wte.weight", (100, 8), None, "embedding"),
        ("layers.3.self_attn.q_proj.weight", (8, 8), None, "attention"),
        ("h.0.attn.c_attn.bias", (24,), None, "bias"),  # biases of any layer: bias
        ("h.0.attn.c_attn.weight", (8, 24), None, "attention"),
        ("layers.3.mlp.down_proj.weight", (8, 32), None, "mlp"),
        ("encoder.layer.0.intermediate.dense.weight", (32, 8), None, "mlp"),
        ("1.layers.0.linear1.weight", (32, 8), None, "mlp"),  # nn.TransformerEncoderLayer
        ("layers.3.input_layernorm.weight", (8,), None, "norm"),
        ("h.0.ln_1.bias", (8,), None, "norm"),
        ("encoder.bias", (8,), None, "bias"),
        ("head.weight", (2, 8), None, "other"),
        ("encoder.weight", (8, 8), "Embedding", "embedding"),
    ],
)
def test_layer_types(name, shape, module, kind):
    assert layer_type(name, shape, module) == kind


def test_analysis_is_measured_deterministic_and_reads_only(repo_path: Path):
    before = files(repo_path)
    with Repository(repo_path) as repo:
        first = analyze_storage(repo).to_dict()
        second = analyze_storage(repo).to_dict()
        gc = repo.gc(dry_run=True)
    assert first == second  # seeded sample, measured bytes: runs agree
    assert files(repo_path) == before  # the store is only read
    assert first["sampled_lineages"] == first["lineages"] == 7  # small: every name sampled
    keys = {(s["key"], s["value"]) for s in first["settings"]}
    for mode in ("fast", "default", "max"):
        assert ("storage.mode", mode) in keys
    assert ("storage.chunk_bytes", 1 << 20) in keys
    assert ("storage.max_chain_depth", 32) in keys
    assert ("similarity.threshold", 0.95) in keys
    # the current settings' trial reproduces what is stored now, layer by layer
    for s in first["settings"]:
        if s["current"]:
            assert s["estimated_bytes"] == first["stored_bytes"]
            assert s["saving"] == 0
    # the MLP weight spans two chunks at 1 MiB: a measured, not a guessed, difference
    by_chunk = {s["value"]: s for s in first["settings"] if s["key"] == "storage.chunk_bytes"}
    assert by_chunk[1 << 20]["by_layer"]["mlp"] != by_chunk[4 << 20]["by_layer"]["mlp"]
    layers = {ly["layer"]: ly for ly in first["layers"]}
    assert set(layers) == {"embedding", "attention", "mlp", "norm", "bias", "other"}
    assert sum(ly["stored_bytes"] for ly in layers.values()) == first["stored_bytes"]
    assert layers["mlp"]["tensors"] == 3
    tensors = {t["name"]: t for t in first["tensors"]}
    assert tensors["embed.weight"]["how"] == "dedup"
    assert tensors["embed.weight"]["distinct"] == 1
    assert tensors["layers.0.mlp.fc1.weight"]["deltas"] == 2
    assert first["gc"] == {"removed": gc.removed, "freed_bytes": gc.freed_bytes}
    assert gc.freed_bytes > 0
    names = [p["name"] for p in first["profiles"]]
    assert names[:3] == ["default", "fast", "archive"]
    best = min(first["profiles"], key=lambda p: p["estimated_bytes"])
    assert first["recommended"] == best["name"]
    assert first["recommended_command"] == f"coral optimize --apply {best['name']}"


def test_samples_are_seeded_counts_or_fractions(repo_path: Path):
    with Repository(repo_path) as repo:
        found = lineages(repo)
        two = choose_sample(found, 2)
        assert [lin.name for lin in two] == [lin.name for lin in choose_sample(found, 2)]
        assert len(two) == 2
        assert len(choose_sample(found, 0.5)) == 4  # ceil(0.5 * 7)
        assert len({lin.layer for lin in choose_sample(found, 6)}) == 6  # every type first
        small = analyze_storage(repo, sample=2).to_dict()
        assert small["sampled_lineages"] == 2
        with pytest.raises(CoralError):
            analyze_storage(repo, sample=0)


def test_apply_archive_is_bit_exact_and_writes_the_settings(repo_path: Path):
    before = snapshot(repo_path)
    leftover = repo_path / ".coral" / "tmp" / "optimize-killed"
    leftover.mkdir(parents=True)  # what a killed apply leaves behind
    (leftover / "part.pack").write_bytes(b"x")
    with Repository(repo_path) as repo:
        result = apply_profile(repo, "archive")
        assert result.verified == result.tensors == len(repo.store.list())
        assert result.changes["storage.mode"] == ("default", "max")
        assert repo.store.config.mode == "max"  # the open repository writes with them too
        repo.add_all_weights({"late.weight": np.arange(64, dtype=np.float32)})
        late = repo.commit("after the repack")
    assert not leftover.exists()
    after = snapshot(repo_path)
    assert {k: v for k, v in after.items() if k in before} == before  # every tensor as it was
    with Repository(repo_path) as repo:
        assert repo.get_weight("late.weight", late).data.tolist() == list(range(64))
    assert not list((repo_path / ".coral" / "objects" / "tmp").glob("optimize-*"))
    assert not list((repo_path / ".coral" / "tmp").glob("optimize-*"))
    with Repository(repo_path) as repo:
        assert repo.store.config.mode == "max"
        assert repo.store.config.max_chain_depth == 64
        assert repo.config["similarity"]["threshold"] == 0.95
        assert repo.fsck().ok
        assert repo.gc(dry_run=True).freed_bytes > 0  # apply collects nothing gc would


def test_apply_a_profile_with_another_chunk_size_and_back(repo_path: Path):
    before = snapshot(repo_path)
    create_profile(repo_path, "small-chunks", settings={"storage.chunk_bytes": "1048576"})
    with Repository(repo_path) as repo:
        apply_profile(repo, "small-chunks")
    with Repository(repo_path) as repo:
        tid = repo.get_tree().entries["layers.0.mlp.fc1.weight"].tensor_id
        assert repo.store.manifest(tid).chunk_bytes == 1 << 20
        assert len(repo.store.manifest(tid).chunks) == 2
        assert repo.fsck().ok
        apply_profile(repo, "default")
    assert snapshot(repo_path) == before
    with Repository(repo_path) as repo:
        tid = repo.get_tree().entries["layers.0.mlp.fc1.weight"].tensor_id
        assert repo.store.manifest(tid).chunk_bytes == 4 << 20
        assert repo.store.config.mode == "default"
        assert repo.fsck().ok


def test_dry_run_changes_nothing(repo_path: Path):
    before = files(repo_path)
    config = (repo_path / ".coral" / "config.toml").read_text()
    with Repository(repo_path) as repo:
        result = apply_profile(repo, "archive", dry_run=True)
    assert result.dry_run and result.verified == 0
    assert result.estimated_bytes and result.stored_bytes
    assert files(repo_path) == before
    assert (repo_path / ".coral" / "config.toml").read_text() == config


def test_unknown_profile_is_a_user_error(repo_path: Path):
    with Repository(repo_path) as repo, pytest.raises(CoralError) as info:
        apply_profile(repo, "achive")
    assert "archive" in (info.value.hint or "")


def test_similarity_threshold_trials_measure_the_references_they_allow(tmp_path: Path):
    """b.weight is a new name close to a.weight (cosine ~0.995): commits link it at 0.99;
    at 0.999 it would be stored without a reference, and the trial measures the extra bytes."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 256)).astype(np.float32)
    noise = rng.standard_normal(x.shape).astype(np.float32) * np.float32(0.1)
    with Repository.init(tmp_path / "repo") as repo:
        repo.add_all_weights({"a.weight": x})
        repo.commit("one")
        repo.add_all_weights({"b.weight": x + noise})
        repo.commit("two")
        analysis = analyze_storage(repo)
    by_threshold = {
        s.value: s.estimated_bytes for s in analysis.settings if s.key == "similarity.threshold"
    }
    assert by_threshold[0.99] == analysis.stored_bytes
    assert by_threshold[0.999] > analysis.stored_bytes
