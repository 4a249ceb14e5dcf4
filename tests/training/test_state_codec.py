"""The training-state codec: nested state as tensors plus JSON, back bit-exact and type-exact."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from coral.training.state import TrainingState, capture_rng_state, restore_rng_state
from coral.training.state_codec import (
    StateEncodingError,
    decode_state,
    encode_state,
    tensor_names,
)


def test_nested_state_round_trips_with_types():
    shared = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4)}, 1: {}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0, 1]}],
        "floats": [math.inf, -math.inf, -0.0, 1e-310],
        "nan": math.nan,
        "np_scalar": np.float32(2.5),
        "np_array": np.array([1, 2], dtype=np.int16),
        "bytes": b"\x00\xff",
        "set": {3, 1},
        "dtype": torch.bfloat16,
        "device": torch.device("cpu"),
        "tied": [shared, shared],
        (1, "a"): "tuple key",
        "__tensor__": "a key that looks like a tag",
        "none": None,
        "flag": True,
        "big": 2**70,
    }
    skeleton, tensors = encode_state(state, "__optim__/0")
    text = json.dumps(skeleton, allow_nan=False)  # plain JSON: NaN and inf are tagged
    assert all(name.startswith("__optim__/0/") for name in tensors)
    assert tensor_names(skeleton) == set(tensors)
    arrays = {n: t.numpy() if isinstance(t, torch.Tensor) else t for n, t in tensors.items()}
    back = decode_state(json.loads(text), arrays)

    step = back["state"][0]["step"]
    assert step.dtype == torch.float32 and float(step) == 3.0
    assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
    assert back["state"][1] == {}
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert type(back["param_groups"][0]["betas"]) is tuple
    assert [repr(x) for x in back["floats"]] == ["inf", "-inf", "-0.0", "1e-310"]
    assert math.isnan(back["nan"])
    assert back["np_scalar"] == np.float32(2.5) and back["np_scalar"].dtype == np.float32
    assert back["np_array"].dtype == np.int16 and isinstance(back["np_array"], np.ndarray)
    assert back["bytes"] == b"\x00\xff" and back["set"] == {1, 3}
    assert back["dtype"] is torch.bfloat16 and back["device"] == torch.device("cpu")
    assert back["tied"][0] is back["tied"][1]  # one storage, one tensor
    assert back[(1, "a")] == "tuple key" and back["__tensor__"] == "a key that looks like a tag"
    assert back["none"] is None and back["flag"] is True and back["big"] == 2**70


def test_unencodable_objects_raise_or_are_marked():
    class Custom:
        pass

    with pytest.raises(StateEncodingError) as err:
        encode_state({"cfg": {"obj": Custom()}}, "x")
    assert "cfg/obj" in str(err.value)
    skeleton, _ = encode_state({"obj": Custom(), "keep": 1}, "x", strict=False)
    assert decode_state(skeleton, {}) == {"obj": None, "keep": 1}


def test_missing_tensor_is_a_clear_error():
    skeleton, _ = encode_state({"w": np.zeros(2)}, "p")
    with pytest.raises(StateEncodingError):
        decode_state(skeleton, {})


def test_rng_capture_and_restore_reproduce_the_draws():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    saved = TrainingState.capture(step=7)
    first = (random.random(), np.random.rand(), torch.rand(2))
    restore_rng_state({"python": None, "numpy": None})  # absent parts are left alone
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    assert saved.restore_rng()
    again = (random.random(), np.random.rand(), torch.rand(2))
    assert first[0] == again[0] and first[1] == again[1] and torch.equal(first[2], again[2])
    assert set(capture_rng_state()) >= {"python", "numpy", "torch"}
    assert not TrainingState().restore_rng()
