"""Whole-model commits: a Hugging Face folder's non-tensor files (config, tokenizer, generation
config, model card) are versioned with its tensors, whichever command made the commit, and an
export as a folder is something `from_pretrained` loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from coral.cli.main import app
from coral.errors import InvalidNameError
from coral.porcelain import add_paths, export_commit, import_checkpoint, model_files
from coral.remotes.remote import Remote, RemoteConfig
from coral.version_control.repository import Repository

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "coral", "##s"]


def tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A 2-layer BERT with its tokenizer, generation config and model card, saved as HF does."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(folder)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    (folder / "README.md").write_text("# tiny bert\nA model card.\n")
    return folder


def state(model) -> dict[str, bytes]:
    return {k: v.detach().numpy().tobytes() for k, v in model.state_dict().items()}


def test_model_files_of_a_folder_are_not_weights(tmp_path: Path) -> None:
    folder = tiny_bert(tmp_path / "bert")
    files = model_files(folder)
    assert "config.json" in files and "vocab.txt" in files and "README.md" in files
    assert "tokenizer.json" in files and "tokenizer_config.json" in files
    assert not any(p.endswith(".safetensors") for p in files)


def test_cli_add_commit_export_loads_with_from_pretrained(tmp_path: Path) -> None:
    src = tiny_bert(tmp_path / "bert")
    repo_dir = tmp_path / "repo"
    runner = CliRunner()
    for args in (
        ["init", str(repo_dir)],
        ["-C", str(repo_dir), "add", str(src)],
        ["-C", str(repo_dir), "commit", "-m", "bert"],
        ["-C", str(repo_dir), "export", "HEAD", str(tmp_path / "out"), "--format", "hf"],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, (args, res.output)
    out = tmp_path / "out"
    assert (out / "config.json").read_bytes() == (src / "config.json").read_bytes()
    assert (out / "vocab.txt").read_bytes() == (src / "vocab.txt").read_bytes()
    loaded = transformers.BertModel.from_pretrained(out)
    assert state(loaded) == state(transformers.BertModel.from_pretrained(src))
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    original = transformers.AutoTokenizer.from_pretrained(src)
    text = "hello world corals"
    assert tokenizer(text)["input_ids"] == original(text)["input_ids"]
    assert tokenizer.get_vocab() == original.get_vocab()


def test_files_are_carried_by_later_commits_and_checkpoints(tmp_path: Path) -> None:
    src = tiny_bert(tmp_path / "bert")
    repo = Repository.init(tmp_path / "repo")
    import_checkpoint(repo, src)
    files = repo.get_files("HEAD")
    # a weights-only change keeps the files
    weights = repo.get_all_weights("HEAD")
    name = sorted(weights)[0]
    repo.add_weight(name, weights[name].data + np.float32(1))
    repo.commit("tweak one tensor")
    assert repo.get_files("HEAD") == files
    # a training checkpoint (CheckpointManager) keeps them too
    from coral.training.manager import CheckpointManager

    model = transformers.BertModel.from_pretrained(src)
    manager = CheckpointManager(repo, model=model)
    manager.save(step=1)
    manager.close()
    assert repo.get_files("HEAD") == files
    out = export_commit(repo, "HEAD", tmp_path / "out", fmt="hf")
    assert "config.json" in out.model_files
    assert state(transformers.BertModel.from_pretrained(tmp_path / "out")) == state(model)
    repo.close()


def test_merge_carries_files_changed_on_either_side(tmp_path: Path) -> None:
    src = tiny_bert(tmp_path / "bert")
    repo = Repository.init(tmp_path / "repo")
    import_checkpoint(repo, src)
    repo.create_branch("card")
    repo.checkout("card")
    repo.add_file("README.md", b"# tiny bert\nBetter card.\n")
    repo.commit("card")
    repo.checkout("main")
    weights = repo.get_all_weights("HEAD")
    name = sorted(weights)[-1]
    repo.add_weight(name, weights[name].data * np.float32(2))
    repo.add_file("generation_config.json", json.dumps({"max_length": 8}).encode())
    repo.commit("weights and generation config")
    result = repo.merge("card", strategy="ours")
    files = repo.get_files("HEAD")
    assert files["README.md"] == b"# tiny bert\nBetter card.\n"
    assert json.loads(files["generation_config.json"]) == {"max_length": 8}
    assert files["config.json"] == (src / "config.json").read_bytes()
    assert result.commit_hash == repo.head_commit()
    export_commit(repo, "HEAD", tmp_path / "out", fmt="hf")
    transformers.BertModel.from_pretrained(tmp_path / "out")
    repo.close()


def test_replace_removes_files_the_folder_lacks_and_files_travel_to_clones(tmp_path: Path):
    src = tiny_bert(tmp_path / "bert")
    repo = Repository.init(tmp_path / "repo")
    import_checkpoint(repo, src)
    (src / "README.md").unlink()
    result = add_paths(repo, [src], replace=True)
    assert "README.md" not in result.files
    repo.commit("no card")
    assert "README.md" not in repo.list_files("HEAD")
    assert "README.md" in repo.list_files("HEAD~1")
    remote = Remote.from_config(RemoteConfig.from_url("origin", (tmp_path / "r").as_uri()))
    assert remote.push(repo).success
    clone = Repository.init(tmp_path / "clone")
    assert remote.pull(clone).success
    assert clone.get_files("HEAD") == repo.get_files("HEAD")
    assert clone.get_files("HEAD~1") == repo.get_files("HEAD~1")
    clone.gc()
    export_commit(clone, "HEAD", tmp_path / "out", fmt="hf")
    transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    repo.close()
    clone.close()


@pytest.mark.parametrize("bad", ["../escape.json", "/etc/passwd", "a//b", "./x", "a\\b", "x\n"])
def test_unsafe_model_file_paths_are_refused(tmp_path: Path, bad: str) -> None:
    repo = Repository.init(tmp_path / "repo")
    with pytest.raises(InvalidNameError):
        repo.add_file(bad, b"{}")
    assert repo.staging.file_changes() == {}
    repo.close()


def test_tree_without_files_keeps_its_id() -> None:
    from coral.version_control.objects import Tree, TreeEntry

    entry = TreeEntry("fc.bias", "9a" * 32, (2,), "float32")
    assert b"files" not in Tree({"fc.bias": entry}).encode()


def test_gc_keeps_live_model_files_and_fsck_reports_a_missing_one(tmp_path: Path) -> None:
    from coral.version_control.objects import FILE, FileEntry, Tree

    repo = Repository.init(tmp_path / "repo")
    repo.add_weight("w", np.ones(4, np.float32))
    repo.add_file("config.json", b'{"v": 1}')
    repo.commit("one")
    repo.add_file("config.json", b'{"v": 2}')
    repo.commit("two")
    old = repo.list_files("HEAD~1")["config.json"].blob_id
    orphan = repo.add_file("notes.txt", b"never committed")
    with repo.database.transaction() as tx:
        repo.staging.unstage_files(tx)
    repo.gc()
    assert repo.get_files("HEAD") == {"config.json": b'{"v": 2}'}
    assert repo.store.has_blob(FILE, old)  # HEAD~1 is still reachable
    assert not repo.store.has_blob(FILE, orphan)  # nothing needs it: collected
    assert repo.fsck().ok
    head = repo.get_tree("HEAD")
    broken = Tree(head.entries, {**head.files, "lost.json": FileEntry("lost.json", "ab" * 32, 2)})
    commit = repo.writer.write_commit(broken, [repo.head_commit()], "broken", None, None)
    repo.fast_forward("main", commit.commit_hash, repo.head_commit(), "test")
    report = repo.fsck()
    assert not report.ok
    assert any("model file is missing" in p.reason for p in report.problems)
    repo.close()
