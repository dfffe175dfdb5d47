"""What every pipeline shares: model loading, option checking, single-vs-list inputs and batching.

A task subclass says which options it takes, how a batch of inputs becomes graph feeds, and how
one row of outputs becomes the result transformers would return.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from onnxpipe.cancellation import raise_if_cancelled
from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.limits import UNLIMITED, Limits
from onnxpipe.manifest import dtype_of_filename
from onnxpipe.media_sources import MediaSources
from onnxpipe.model_folder import ModelFolder
from onnxpipe.options import check_int
from onnxpipe.session import OnnxSession, parse_device


class Pipeline:
    """Base class: a loaded ONNX session plus per-pipeline default options."""

    #: option name -> default value; a subclass lists every option it implements
    OPTIONS: Mapping[str, Any] = {}
    #: options every pipeline takes
    COMMON_OPTIONS: Mapping[str, Any] = {"batch_size": 1}

    def __init__(
        self,
        model: Union[ModelFolder, str],
        task: str,
        device: Union[str, int, None] = "cpu",
        dtype: Optional[str] = None,
        intra_op_num_threads: Optional[int] = None,
        media_sources: Optional[MediaSources] = None,
        limits: Optional[Limits] = None,
        **options: Any,
    ):
        self.folder = ModelFolder.open(model)
        if media_sources is not None and not isinstance(media_sources, MediaSources):
            raise InvalidOptionError(
                f"media_sources must be an onnxpipe.media_sources.MediaSources, got {type(media_sources).__name__}."
            )
        #: where string image/audio inputs may point (files, URLs); fixed at construction, never per call
        self.media_sources = media_sources or MediaSources()
        if limits is not None and not isinstance(limits, Limits):
            raise InvalidOptionError(f"limits must be an onnxpipe.limits.Limits, got {type(limits).__name__}.")
        #: what one call may ask for (beams, tokens, audio length, inputs...); none by default
        self.limits = limits or UNLIMITED
        self.task = task
        self.device = device
        self.load(dtype, intra_op_num_threads)
        self.setup()
        self.defaults = self.check_options(options)

    def load(self, dtype: Optional[str], intra_op_num_threads: Optional[int]) -> None:
        """Open the ONNX graph(s): here the folder's one `model*.onnx` variant. Sets model_path, dtype and session;
        pipelines that run several graphs (generation) override it."""
        device_kind, _ = parse_device(self.device)
        self.model_path = self.folder.onnx_file(dtype, device_kind)
        self.dtype = dtype_of_filename(self.model_path.name)  # the variant actually loaded
        self.session = OnnxSession(self.model_path, self.device, intra_op_num_threads)

    def setup(self) -> None:
        """Load what the task needs beside the session (tokenizer, label maps...), before options are checked,
        so option checks may use it. Subclasses extend it and call super().setup() first."""

    # -- options -------------------------------------------------------------------------------
    def check_options(self, options: Mapping[str, Any], base: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """Merge `options` over `base` (or the defaults); raise InvalidOptionError on unknown names."""
        known = {**self.COMMON_OPTIONS, **self.OPTIONS}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InvalidOptionError(
                f"{self.task} does not take option(s) {unknown}; it takes: {', '.join(sorted(known))}."
            )
        merged = dict(known if base is None else base)
        merged.update(options)
        check_int("batch_size", merged["batch_size"])
        self.validate_options(merged)
        return merged

    def validate_options(self, options: dict[str, Any]) -> None:
        """Check option values (subclasses override); may normalize values in place."""

    # -- calling -------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run one input, or a list of inputs, with this call's options; one result per input.

        The one `__call__` of every task; tasks adapt it through the hooks below, in call order:
        call_arguments (which arguments are inputs), check_options, check_call (what a call must give),
        split_inputs and check_item (the items), run_items (the work), shape_results (transformers' nesting).
        """
        inputs, given = self.call_arguments(args, kwargs)
        options = self.check_options(given, self.defaults)
        self.check_call(options)
        items, single = self.split_inputs(inputs)
        if isinstance(items, list):
            self.limits.check_inputs(len(items))
        else:  # an iterator of inputs: results come batch_size inputs at a time
            return self.run_lazily(items, options)
        results = self.run_items([self.check_item(item) for item in items], options)
        return self.shape_results(results, single, inputs, given)

    def call_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """(inputs, options) of a call: by default one positional argument (or inputs=), every keyword an option."""
        return one_input(*args, **kwargs)

    def check_call(self, options: dict[str, Any]) -> None:
        """Checks of a call's merged options that the pipeline's defaults need not pass (a required option)."""

    def check_item(self, item: Any) -> Any:
        """Validate (and normalize) one input; subclasses raise InvalidInputError naming what they take."""
        return item

    def shape_results(self, results: list[Any], single: bool, inputs: Any, given: Mapping[str, Any]) -> Any:
        """The call's return value from one result per item: by default the lone result of a single input, else
        the list. `inputs` and `given` (the call's own options) are there for tasks whose nesting depends on them."""
        return results[0] if single else results

    def run_lazily(self, items: Iterator[Any], options: dict[str, Any]) -> Iterator[Any]:
        """Results of an iterator of inputs, yielded as they come, `batch_size` inputs per run_items."""
        chunk: list[Any] = []
        for item in items:
            chunk.append(self.check_item(item))
            if len(chunk) == options["batch_size"]:
                yield from self.run_items(chunk, options)
                chunk = []
        if chunk:
            yield from self.run_items(chunk, options)

    # -- inputs --------------------------------------------------------------------------------
    def split_inputs(self, inputs: Any) -> tuple[Union[list[Any], Iterator[Any]], bool]:
        """(items, was_single): a list input becomes its items; anything else is one item. A task may return an
        iterator instead of a list, to run its items lazily (run_lazily)."""
        if isinstance(inputs, (list, tuple)):
            if len(inputs) == 0:
                raise InvalidInputError(f"{self.task} got an empty list; pass at least one input.")
            return list(inputs), False
        return [inputs], True

    # -- running -------------------------------------------------------------------------------
    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        """Prepare every item, run them in batches of similar length, post-process; results in input order."""
        return self.run_pieces(self.prepare(items, options), options)

    def run_pieces(
        self, pieces: Sequence[Any], options: dict[str, Any], collate: Optional[Callable[[Sequence[Any]], Any]] = None
    ) -> list[Any]:
        """Run prepared pieces in batches of similar length and post-process each row; results in piece order.

        Grouping by length keeps padding small, which saves compute and keeps int8 activation ranges tight.
        `collate` (default: self.collate with the call's options) lets a task put what it computed once per
        call into every batch (fill-mask's target ids, CLIP's tokenized labels) instead of into the options.
        """
        collate = collate or (lambda batch: self.collate(batch, options))
        results: list[Any] = [None] * len(pieces)
        size = options["batch_size"]
        for group in self.batch_groups(pieces):
            for start in range(0, len(group), size):
                raise_if_cancelled()  # onnxpipe.cancellation: a cancelled call stops between model runs
                chunk = group[start : start + size]
                encoded = collate([pieces[i] for i in chunk])
                outputs = self.session.run(self.feeds(encoded))
                for row, index in enumerate(chunk):
                    results[index] = self.postprocess(outputs, encoded, row, options)
        return results

    def batch_groups(self, pieces: Sequence[Any]) -> list[list[int]]:
        """Indices of pieces that may share a batch, each group in batching order: by default one group sorted
        by length, so batches hold inputs of similar length."""
        return [sorted(range(len(pieces)), key=lambda i: len(pieces[i]))]

    def prepare(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        """One model-ready piece per item, with a len() used to group similar lengths (subclasses implement)."""
        raise NotImplementedError

    def collate(self, pieces: Sequence[Any], options: dict[str, Any]) -> Any:
        """Stack pieces into one padded batch (subclasses implement)."""
        raise NotImplementedError

    def feeds(self, encoded: Any) -> dict[str, np.ndarray]:
        """The graph feeds of an encoded batch."""
        return encoded.feeds()

    def postprocess(self, outputs: dict[str, np.ndarray], encoded: Any, row: int, options: dict[str, Any]) -> Any:
        """The result for one row of the batch (subclasses implement)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={str(self.folder.path)!r}, file={self.model_path.name!r}, providers={self.session.providers})"


def one_input(inputs: Any, **options: Any) -> tuple[Any, dict[str, Any]]:
    """The default call signature, `pipe(inputs, **options)`: Python's own TypeError for a missing or extra input."""
    return inputs, options
