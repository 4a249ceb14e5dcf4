"""`Snapshot`: private host copies of a run's tensors, taken on the training thread and
committed later.

Taking a snapshot costs one copy of the tensors: CPU tensors are cloned, CUDA tensors are copied
asynchronously into pinned host memory (the background writer waits for those copies before
reading them). Compression, hashing and disk writes all happen later, off the training thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coral.core.tensor_convert import torch_to_numpy
from coral.core.weight_tensor import WeightTensor


@dataclass
class Snapshot:
    """Private copies of a run's tensors plus the training record that goes into the commit.

    `tensors` values are CPU torch tensors or numpy arrays nobody else writes to; `wait()`
    blocks until asynchronous device-to-host copies have landed (the background writer calls it).
    """

    tensors: dict[str, Any]
    record: dict[str, Any]
    layer_types: dict[str, str] = field(default_factory=dict)
    _ready: Callable[[], None] | None = None

    def wait(self) -> None:
        if self._ready is not None:
            self._ready()
            self._ready = None

    def to_weights(self) -> dict[str, WeightTensor]:
        """The snapshot as WeightTensors (after `wait()`)."""
        self.wait()
        out: dict[str, WeightTensor] = {}
        for name, value in self.tensors.items():
            arr = torch_to_numpy(value) if hasattr(value, "untyped_storage") else np.asarray(value)
            out[name] = WeightTensor(arr, name=name, layer_type=self.layer_types.get(name))
        return out

    @property
    def nbytes(self) -> int:
        total = 0
        for v in self.tensors.values():
            total += (
                int(v.numel() * v.element_size())
                if hasattr(v, "numel")
                else int(np.asarray(v).nbytes)
            )
        return total


def copy_tensors(tensors: Mapping[str, Any]) -> tuple[dict[str, Any], Callable[[], None] | None]:
    """Private host copies of `tensors`: CPU tensors cloned, CUDA ones copied asynchronously into
    pinned memory (the returned callable waits for those copies)."""
    out: dict[str, Any] = {}
    streams: set[Any] = set()
    for name, value in tensors.items():
        if not hasattr(value, "untyped_storage"):
            out[name] = np.array(value, copy=True)
            continue
        import torch

        t = value.detach()
        if t.device.type == "cpu":
            out[name] = t.clone(memory_format=torch.contiguous_format)
        elif t.device.type == "cuda":
            buf = torch.empty(tuple(t.shape), dtype=t.dtype, pin_memory=True)
            buf.copy_(t, non_blocking=True)
            streams.add(t.device)
            out[name] = buf
        else:
            out[name] = t.to("cpu", copy=True).contiguous()
    if not streams:
        return out, None
    import torch

    events = []
    for device in streams:
        ev = torch.cuda.Event()
        ev.record(torch.cuda.current_stream(device))
        events.append(ev)

    def ready() -> None:
        for ev in events:
            ev.synchronize()

    return out, ready
