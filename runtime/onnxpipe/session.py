"""Device strings -> onnxruntime execution providers, session creation, and checked `run` calls.

`providers_for_device` is a pure function so the CUDA path is testable on machines without a GPU.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from onnxpipe.cpu import CpuInfo, this_cpu
from onnxpipe.errors import CorruptModelError, DeviceNotAvailableError, InvalidInputError, InvalidOptionError
from onnxpipe.huge_pages import HugePageWatch

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
VALID_DEVICES = "'cpu', 'cuda', 'cuda:N' (or an int: -1 for cpu, N for cuda:N)"

ProviderSpec = Union[str, tuple[str, dict[str, Any]]]


def parse_device(device: Union[str, int, None]) -> tuple[str, int]:
    """Parse a device string or int into (kind, index): 'cpu' -> ('cpu', 0), 'cuda:1' -> ('cuda', 1)."""
    if device is None:
        return ("cpu", 0)
    if isinstance(device, bool) or not isinstance(device, (str, int)):
        raise InvalidOptionError(f"device must be one of {VALID_DEVICES}; got {device!r}.")
    if isinstance(device, int):
        return ("cpu", 0) if device < 0 else ("cuda", device)
    match = re.fullmatch(r"\s*(cpu|cuda)(?::(\d+))?\s*", device.lower())
    if not match:
        raise InvalidOptionError(f"Unknown device {device!r}; valid devices: {VALID_DEVICES}.")
    return (match.group(1), int(match.group(2) or 0))


def providers_for_device(device: Union[str, int, None], available: Sequence[str]) -> list[ProviderSpec]:
    """The execution providers for a device, given the providers this onnxruntime build offers.

    Raises DeviceNotAvailableError (listing `available` and the fix) when the device's provider is missing.
    """
    kind, index = parse_device(device)
    if kind == "cpu":
        return [CPU]
    if CUDA not in available:
        raise DeviceNotAvailableError(
            f"device={device!r} needs onnxruntime's {CUDA}, but this onnxruntime offers only: "
            f"{', '.join(available) or 'none'}. {gpu_install_hint()} Or pass device='cpu'."
        )
    # use_tf32=0: exact float32 matmuls, as torch computes them by default. With onnxruntime's default (TF32 on) the
    # logits of an fp32 graph moved by up to 1e-2 on an H200 and greedy generation took other tokens at near-ties;
    # the fp16 variant is the fast path on CUDA.
    return [(CUDA, {"device_id": index, "use_tf32": 0}), CPU]


def gpu_install_hint() -> str:
    """How to get the CUDA build of onnxruntime, tailored to what is installed now."""
    import importlib.metadata  # only on this error path: importing it costs ~17 ms of every cold start

    installed = set()
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            installed.add(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if installed == {"onnxruntime", "onnxruntime-gpu"}:
        return (
            "Both onnxruntime and onnxruntime-gpu are installed and the CPU build's files won; "
            "fix it with: pip install --force-reinstall --no-deps onnxruntime-gpu"
        )
    return "Install the CUDA build with: pip install 'onnxpipe[gpu]' && pip install --force-reinstall --no-deps onnxruntime-gpu"


def max_threads() -> int:
    """The most intra-op threads a session may ask for: 4 x the CPUs this process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 4 * max(1, cpus)


def session_options(intra_op_num_threads: Optional[int] = None, cpu: Optional[CpuInfo] = None) -> Any:
    """onnxruntime SessionOptions with full graph optimization, an optional intra-op thread count, and the
    settings that keep int8 right on this CPU class (cpu.py; `cpu` defaults to this machine's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    for key, value in (cpu or this_cpu()).session_config().items():
        options.add_session_config_entry(key, value)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_num_threads is not None:
        if not isinstance(intra_op_num_threads, int) or intra_op_num_threads < 0:
            raise InvalidOptionError(f"intra_op_num_threads must be an int >= 0 (0 = all cores); got {intra_op_num_threads!r}.")
        bound = max_threads()
        if intra_op_num_threads > bound:
            raise InvalidOptionError(
                f"intra_op_num_threads={intra_op_num_threads} is more than {bound} (4 x the {bound // 4} CPUs this process "
                "may use): onnxruntime would start that many spinning threads. Pass at most that, or 0 for all cores."
            )
        options.intra_op_num_threads = intra_op_num_threads
    return options


_NUMPY_OF_ORT = {
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
    "tensor(float16)": np.float16, "tensor(bool)": np.bool_, "tensor(double)": np.float64,
}


class OnnxSession:
    """An onnxruntime session plus the graph's input names and types; `run` checks feeds first.

    onnxruntime sessions are thread-safe, so one OnnxSession may serve many threads.
    """

    def __init__(self, path: Path, device: Union[str, int, None] = "cpu", intra_op_num_threads: Optional[int] = None):
        import onnxruntime as ort

        self.path = Path(path)
        providers = providers_for_device(device, ort.get_available_providers())
        options = session_options(intra_op_num_threads)
        watch = HugePageWatch() if providers[0] == CPU else None
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf / InvalidGraph types
            raise CorruptModelError(
                f"onnxruntime cannot load {self.path}: {str(exc).strip().splitlines()[0][:300]}. "
                "The file is damaged or not an ONNX model; re-export it with `onnxpipe export`."
            ) from exc
        self.huge_pages = watch  # collapsed after the first run: the copy must not delay the first result
        if providers[0] != CPU and providers[0][0] not in self.session.get_providers():
            warnings.warn(
                f"onnxruntime could not start {providers[0][0]} for device={device!r} and fell back to the CPU "
                f"(providers in use: {self.session.get_providers()}). Check the CUDA and cuDNN libraries.",
                RuntimeWarning,
                stacklevel=3,
            )
        self.inputs = {i.name: i.type for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        #: each output's declared shape: ints for fixed axes, strings (or None) for symbolic ones
        self.output_shapes = {o.name: list(o.shape or []) for o in self.session.get_outputs()}
        self.providers = self.session.get_providers()

    def output_named(self, name: str, index: int = 0) -> str:
        """`name` when the graph has an output of that name (optimum's naming), else the output at `index`."""
        return name if name in self.output_names else self.output_names[index]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
        """Run the graph on the feeds it declares (extra feeds are dropped) and return outputs by name."""
        missing = [name for name in self.inputs if name not in feeds]
        if missing:
            raise InvalidInputError(
                f"{self.path.name} needs inputs {missing} that the pipeline did not produce "
                f"(graph inputs: {list(self.inputs)}; produced: {list(feeds)})."
            )
        checked = {}
        for name, kind in self.inputs.items():
            array = np.asarray(feeds[name])
            want = _NUMPY_OF_ORT.get(kind)
            checked[name] = array.astype(want, copy=False) if want is not None else array
        names = list(outputs) if outputs is not None else self.output_names
        results = dict(zip(names, self.session.run(names, checked)))
        watch = self.huge_pages
        if watch is not None:
            self.huge_pages = None
            watch.collapse_new()  # once, even when threads race here: the watch keeps its own lock
        return results
