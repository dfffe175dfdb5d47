"""Quiets the libraries an export drives: keeps their chatter (tracer warnings, quantizer hints, deprecation
notes) out of an export's output, and with `quiet` every warning and log below ERROR."""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

# log messages that never help an onnxpipe user, dropped even when not quiet
NOISE_MESSAGES: tuple[str, ...] = (
    "Please consider to run pre-processing before quantization",  # quant_pre_process is not needed here
    "`torch_dtype` is deprecated",  # optimum passes the old keyword to transformers
    "symbolic shape inference disabled or failed",  # the optimizer then skips one fusion; the manifest shows which
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in NOISE_MESSAGES)


@contextmanager
def silenced(quiet: bool) -> Iterator[None]:
    """Inside: known noise is dropped; when `quiet`, every third-party warning and log below ERROR too."""
    import torch.jit
    from transformers.utils import logging as transformers_logging

    transformers_logging.get_logger("transformers")  # sets up its handler, which the filter below goes on
    root = logging.getLogger()
    # onnxruntime's quantizer logs through the root logger, whose first use would call basicConfig()
    # and leave a handler behind; give the root a handler of our own for the duration instead
    handler: logging.Handler = logging.NullHandler() if quiet else logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    added = not root.handlers
    if added:
        root.addHandler(handler)
    noise = _DropNoise()
    filtered = [*root.handlers, *logging.getLogger("transformers").handlers]
    for target in filtered:
        target.addFilter(noise)
    previous_disable = logging.root.manager.disable
    if quiet:
        logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            else:
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logging.disable(previous_disable)
        for target in filtered:
            target.removeFilter(noise)
        if added:
            root.removeHandler(handler)
