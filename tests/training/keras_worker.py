"""Keras checks run in a subprocess, since Keras fixes its backend when first imported.

    KERAS_BACKEND=tensorflow python -m tests.training.keras_worker WORKDIR

Trains with CoralKerasCallback, checks bit-exact commits and an exact resume; reads a `.keras`
file back; with the TensorFlow backend also imports TF checkpoints and SavedModels. Prints
`KERAS-OK <backend>` when every check passed (an assertion error exits non-zero otherwise).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from coral.training import CheckpointConfig
from coral.version_control.repository import Repository

BACKEND = keras.backend.backend()


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(48, 6)).astype("float32")
    return x, (x.sum(axis=1, keepdims=True) * 0.5).astype("float32")


def _model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="tanh", name="enc"),
            keras.layers.Dropout(0.25, seed=11),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def _weights(model: keras.Model) -> dict[str, bytes]:
    """Bytes of each weight by its path within the model (`enc/kernel`)."""
    return {
        v.path.split("/", 1)[1]: np.asarray(keras.ops.convert_to_numpy(v.value)).tobytes()
        for v in model.weights
    }


def check_fit_and_resume(work: Path) -> None:
    from coral.integrations.keras import CoralKerasCallback

    x, y = _data()
    repo = Repository.init(work / f"repo-{BACKEND}")
    reference = _model(1)
    hist = reference.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0).history["loss"]

    first = _model(1)
    cb = CoralKerasCallback(repo, CheckpointConfig(every_n_epochs=1, keep_last_n=5))
    h1 = first.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[cb]).history[
        "loss"
    ]
    assert h1 == hist[:2], (h1, hist)
    infos = cb.list_checkpoints()
    assert [(i.epoch, i.step) for i in infos] == [(0, 6), (1, 12)], infos
    stored = repo.get_all_weights(infos[-1].commit)
    for path, raw in _weights(first).items():
        assert stored[path].data.tobytes() == raw, path
    assert any(n.startswith("__optim__/0/") for n in stored)
    assert any(n.startswith("__rng__/keras/") for n in stored)
    assert repo.get_commit(infos[-1].commit).metadata["training"]["backend"] == BACKEND

    resumed = _model(99)  # other initial weights and seeds, as in a new process
    cb2 = CoralKerasCallback(repo, CheckpointConfig(every_n_epochs=1))
    state = cb2.restore(resumed)
    assert state is not None and state.epoch == 1 and state.step == 12
    h2 = resumed.fit(
        x,
        y,
        batch_size=8,
        epochs=4,
        initial_epoch=state.epoch + 1,
        shuffle=False,
        verbose=0,
        callbacks=[cb2],
    ).history["loss"]
    assert h2 == hist[2:], (h2, hist)
    assert _weights(resumed) == _weights(reference)
    assert [i.epoch for i in cb2.list_checkpoints()] == [0, 1, 2, 3]
    repo.close()


def check_keras_file(work: Path) -> None:
    from coral.integrations.keras import load_keras_file

    model = _model(3)
    path = work / f"model-{BACKEND}.keras"
    model.save(path)
    loaded = load_keras_file(path)
    assert {k: v.tobytes() for k, v in loaded.items()} == _weights(model)
    repo = Repository.init(work / f"repo-keras-file-{BACKEND}")
    repo.add_all_weights(loaded)
    commit = repo.commit("import .keras")
    back = repo.get_all_weights(commit)
    assert {k: w.data.tobytes() for k, w in back.items()} == _weights(model)
    repo.close()


def check_tensorflow_formats(work: Path) -> None:
    import ml_dtypes
    import tensorflow as tf

    from coral.integrations.tensorflow_io import (
        is_saved_model,
        is_tf_checkpoint,
        load_saved_model,
        load_tf_checkpoint,
    )

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.random.normal((3, 4), seed=1), name="w")
            self.inner = tf.Module()
            self.inner.b = tf.Variable(
                tf.constant([1.5, -0.0, np.inf, np.nan], dtype=tf.bfloat16), name="b"
            )
            self.inner.count = tf.Variable(7, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
        def __call__(self, x):
            return x @ self.w

    net = Net()
    expect = {
        "model/w": net.w.numpy(),
        "model/inner/b": net.inner.b.numpy(),
        "model/inner/count": net.inner.count.numpy(),
    }
    opt = tf.Variable(0.5, name="lr")
    prefix = tf.train.Checkpoint(model=net, lr=opt).save(str(work / "tfckpt" / "ckpt"))
    for form in (prefix, prefix + ".index", str(work / "tfckpt")):
        assert is_tf_checkpoint(form), form
        got = load_tf_checkpoint(form)
        assert set(got) == {*expect, "lr"}, got.keys()
        for k, v in expect.items():
            assert got[k].dtype == v.dtype and got[k].tobytes() == v.tobytes(), k
    assert got["model/inner/b"].dtype == np.dtype(ml_dtypes.bfloat16)

    tf.saved_model.save(net, str(work / "sm_module"))
    assert is_saved_model(work / "sm_module")
    got = load_saved_model(work / "sm_module")
    assert {k: v.tobytes() for k, v in got.items()} == {
        k.removeprefix("model/"): v.tobytes() for k, v in expect.items()
    }

    kmodel = _model(4)
    kmodel.export(str(work / "sm_keras"), verbose=False)
    got = load_saved_model(work / "sm_keras")
    expect_keras = {v.path: np.asarray(v.numpy()).tobytes() for v in kmodel.weights}  # export names
    assert {k: got[k].tobytes() for k in expect_keras} == expect_keras, sorted(got)
    assert all("seed_generator" in k for k in set(got) - set(expect_keras)), sorted(got)

    repo = Repository.init(work / "repo-tf")
    repo.add_all_weights(load_tf_checkpoint(prefix))
    commit = repo.commit("import tf checkpoint")
    back = repo.get_all_weights(commit)
    for k, v in expect.items():
        assert back[k].data.tobytes() == v.tobytes(), k
    repo.close()


def main() -> None:
    work = Path(sys.argv[1])
    work.mkdir(parents=True, exist_ok=True)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif BACKEND == "torch":
        import torch

        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
    check_fit_and_resume(work)
    check_keras_file(work)
    if BACKEND == "tensorflow":
        check_tensorflow_formats(work)
    print(f"KERAS-OK {BACKEND}")


if __name__ == "__main__":
    main()
