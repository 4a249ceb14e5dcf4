"""Which files of a model folder are the model's non-tensor files (kept in commits as blobs)."""

from __future__ import annotations

from pathlib import Path

# weights, or indexes of weights: these become tensors, never file blobs
WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".npz",
    ".npy",
    ".h5",
    ".keras",
    ".msgpack",
    ".onnx",
    ".gguf",
    ".pb",
)
WEIGHT_INDEXES = (".safetensors.index.json", ".bin.index.json")
SKIP_DIRS = {"__pycache__", "runs", "logs", "variables"}


def model_files(folder: Path) -> dict[str, Path]:
    """Path inside the model -> file, for every file of `folder` that is not weights: config,
    tokenizer files, generation config, model card, ... (hidden files and folders skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") or part in SKIP_DIRS for part in rel.parts):
            continue
        if not path.is_file() or (path.is_symlink() and not path.resolve().is_file()):
            continue
        name = path.name.lower()
        if name.endswith(WEIGHT_SUFFIXES) or name.endswith(WEIGHT_INDEXES):
            continue
        if path.stat().st_size > max_file_bytes():
            continue
        found[rel.as_posix()] = path
    return found


def max_file_bytes() -> int:
    """The largest model file a commit keeps (imported here on use: the writer imports numpy,
    which commands that only list files should not pay for)."""
    from coral.version_control.writer import MAX_FILE_BYTES

    return MAX_FILE_BYTES
