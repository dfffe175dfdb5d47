"""Keeping the KV cache on the device between decoding steps with onnxruntime IO binding.

`plan_step` is a pure function (testable without a GPU) that says, for one step, which graph inputs come
from host numpy arrays and which from values already on the device, and which outputs stay on the device
(the cache) or come back to the host (the logits). `BoundRunner` carries a plan out with an IOBinding.
On the CPU the plain `session.run` path is the default; binding there only avoids copying the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from onnxpipe.generation.kv_cache import CacheLayout

LOGITS = "logits"
ENCODER_HIDDEN = "encoder_hidden_states"

_NUMPY_OF_ORT = {
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
    "tensor(float16)": np.float16, "tensor(bool)": np.bool_,
}


@dataclass(frozen=True)
class BindingPlan:
    """Where each graph input comes from and where each wanted output goes, for one step."""

    host_inputs: tuple[str, ...]  # numpy arrays, copied to the device by onnxruntime
    device_inputs: tuple[str, ...]  # values already on the device: the previous step's cache, the encoder output
    device_outputs: tuple[str, ...]  # left on the device: the cache for the next step
    host_outputs: tuple[str, ...]  # copied back to numpy: the logits


def plan_step(
    input_names: Iterable[str], layout: CacheLayout, *, first_step: bool, resident: Iterable[str] = ()
) -> BindingPlan:
    """The binding plan of one decoding step.

    First step: the (empty) cache comes from the host; every present output, self- and cross-attention,
    stays on the device. Later steps: the cache comes from the device, and only the self-attention presents
    are fetched (a merged decoder's cross-attention outputs are dummies then; the first step's are kept).
    `resident` names other inputs already on the device (e.g. the encoder output).
    """
    resident = set(resident)
    cache = set(layout.past_names)
    host, device = [], []
    for name in input_names:
        on_device = (name in cache and not first_step) or (name not in cache and name in resident)
        (device if on_device else host).append(name)
    kept = layout.past_names if first_step else layout.self_attention
    return BindingPlan(tuple(host), tuple(device), tuple(layout.present_of[name] for name in kept), (LOGITS,))


class BoundRunner:
    """Runs a session step by step with IO binding on one device ('cpu' or 'cuda', with its index)."""

    def __init__(self, session: Any, device_type: str = "cuda", device_id: int = 0):
        self.session = session  # an OnnxSession
        self.device_type = device_type
        self.device_id = device_id

    def to_device(self, array: np.ndarray) -> Any:
        """A numpy array copied into an OrtValue on this runner's device."""
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device_type, self.device_id)

    @staticmethod
    def to_host(value: Any) -> np.ndarray:
        """An OrtValue (or numpy array) as a numpy array on the host."""
        return value.numpy() if hasattr(value, "numpy") else np.asarray(value)

    def run(
        self, plan: BindingPlan, host: Mapping[str, np.ndarray], device: Mapping[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Bind, run and return (host outputs as numpy, device outputs as OrtValues), both by name."""
        binding = self.session.session.io_binding()  # one binding per call: a pipeline may serve many threads
        for name in plan.host_inputs:
            want = _NUMPY_OF_ORT.get(self.session.inputs[name])
            array = np.asarray(host[name])
            binding.bind_cpu_input(name, np.ascontiguousarray(array.astype(want, copy=False) if want else array))
        for name in plan.device_inputs:
            value = device[name]
            if isinstance(value, np.ndarray):
                value = self.to_device(value)
            binding.bind_ortvalue_input(name, value)
        for name in plan.device_outputs:
            binding.bind_output(name, self.device_type, self.device_id)
        for name in plan.host_outputs:
            binding.bind_output(name, "cpu", 0)
        binding.synchronize_inputs()
        self.session.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        values = binding.get_outputs()
        names = list(plan.device_outputs) + list(plan.host_outputs)
        by_name = dict(zip(names, values))
        return (
            {name: by_name[name].numpy() for name in plan.host_outputs},
            {name: by_name[name] for name in plan.device_outputs},
        )
