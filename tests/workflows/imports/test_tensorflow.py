"""`TensorFlowIntegration`: a tf.Module's weights, optimizer slots and RNG round-trip
bit-exact; exports to a TF checkpoint / SavedModel read back with the commit's names; a
tf.data dataset streams a commit's tensors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from coral.errors import CoralError, ShapeMismatchError  # noqa: E402
from coral.integrations.tensorflow import (  # noqa: E402
    TensorFlowIntegration,
    export_checkpoint,
    export_saved_model,
    tensor_dataset,
)
from coral.integrations.tensorflow_io import load_saved_model, load_tf_checkpoint  # noqa: E402
from coral.training.state import TrainingState  # noqa: E402
from coral.version_control.repository import Repository  # noqa: E402
from tests.cli.conftest import assert_user_error  # noqa: E402


class Net(tf.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.encoder = tf.Variable(tf.random.normal((width, 2)))
        self.blocks = [tf.Variable(tf.zeros(2)), tf.Variable(tf.ones(2, dtype=tf.bfloat16))]

    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
    def __call__(self, x):  # type: ignore[no-untyped-def]
        return x @ self.encoder + self.blocks[0] + tf.cast(self.blocks[1], tf.float32)


def _train(net: Net, opt, steps: int = 2) -> None:  # type: ignore[no-untyped-def]
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(net(tf.ones((2, 3))) ** 2)
        variables = [net.encoder, net.blocks[0]]
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))


def test_save_load_export_and_stream(tmp_path):
    net, opt = Net(), keras.optimizers.Adam(0.1)
    _train(net, opt)
    with Repository.init(tmp_path / "repo") as repo:
        commit = TensorFlowIntegration(net, opt).save(repo, "tf", TrainingState(step=2))
        names = repo.list_weights(commit)
        assert {"encoder", "blocks/0", "blocks/1"} <= set(names)
        assert any(n.startswith("__optim__/0/") for n in names)

        fresh, fresh_opt = Net(), keras.optimizers.Adam(0.1)
        fresh_opt.build([fresh.encoder, fresh.blocks[0]])
        state = TensorFlowIntegration(fresh, fresh_opt).load(repo, commit)
        assert state.step == 2 and state.commit == commit
        for a, b in zip(net.variables, fresh.variables, strict=True):
            assert a.numpy().tobytes() == b.numpy().tobytes() and a.dtype == b.dtype
        for a, b in zip(opt.variables, fresh_opt.variables, strict=True):
            assert np.array_equal(a.numpy(), b.numpy())

        prefix = export_checkpoint(repo, commit, Net(), tmp_path / "ckpt" / "model")
        read = load_tf_checkpoint(prefix)
        assert sorted(read) == ["blocks/0", "blocks/1", "encoder"]
        assert read["encoder"].tobytes() == repo.get_weight("encoder", commit).data.tobytes()
        restored = Net()
        tf.train.Checkpoint(restored).read(prefix).assert_existing_objects_matched()
        assert np.array_equal(restored.encoder.numpy(), net.encoder.numpy())

        saved = export_saved_model(repo, commit, Net(), tmp_path / "saved")
        assert json.loads((saved / "coral.json").read_text())["commit"] == commit
        assert load_saved_model(saved)["blocks/1"].dtype == repo.get_weight("blocks/1").dtype
        x = tf.ones((1, 3))
        np.testing.assert_array_equal(tf.saved_model.load(str(saved))(x).numpy(), net(x).numpy())

        dataset = tensor_dataset(repo, commit, names=["encoder", "blocks/0"])
        pairs = [(n.numpy().decode(), t.numpy()) for n, t in dataset]
        assert [n for n, _ in pairs] == ["encoder", "blocks/0"]
        assert pairs[0][1].tobytes() == net.encoder.numpy().tobytes()
        with pytest.raises(CoralError, match="2 dtypes"):
            tensor_dataset(repo, commit)
        cast = list(tensor_dataset(repo, commit, dtype="float32"))
        assert len(cast) == 3
        with pytest.raises(ShapeMismatchError, match="encoder"):
            export_checkpoint(repo, commit, Net(width=4), tmp_path / "bad" / "model")


def test_keras_model_is_delegated_and_cli_imports_the_export(tmp_path):
    from typer.testing import CliRunner

    from coral.cli.main import app

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    with Repository.init(tmp_path / "repo") as repo:
        commit = TensorFlowIntegration(model).save(repo, "keras")
        assert {"dense/kernel", "dense/bias"} <= set(repo.list_weights(commit))
        assert repo.read_commit(commit).metadata["training"]["framework"] == "keras"
        prefix = export_checkpoint(repo, commit, model, tmp_path / "k" / "model")
        kernel = repo.get_weight("dense/kernel", commit).data.tobytes()
    Repository.init(tmp_path / "other").close()
    runner = CliRunner()
    other = ["-C", str(tmp_path / "other")]
    result = runner.invoke(app, [*other, "import-tensorflow", prefix + ".index", "--json"])
    assert result.exit_code == 0, result.output
    with Repository(tmp_path / "other") as repo:
        commit = json.loads(result.stdout)["commit_hash"]
        assert sorted(repo.list_weights(commit)) == ["dense/bias", "dense/kernel"]
        assert repo.get_weight("dense/kernel", commit).data.tobytes() == kernel
    assert_user_error(runner.invoke(app, [*other, "import-tensorflow", str(tmp_path / "nope")]))
