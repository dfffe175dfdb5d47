"""Corpus embedding on Ray Data: the same pipelines as `onnxpipe embed`, one per actor of an actor pool.

    import ray
    from onnxpipe.ray import embed_dataset

    ds = ray.data.read_parquet("s3://bucket/corpus/")
    embed_dataset(ds, model="/shared/models/minilm", concurrency=4, batch_size=256).write_parquet("s3://bucket/vectors/")

`EmbedBatches` is the `map_batches` callable class behind it, for pipelines of your own. Ray is not imported here:
the dataset brings it. Each actor loads the model folder itself, so the path must be valid on every node (as for
`onnxpipe serve --ray`).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from onnxpipe.corpus.embed import EmbedOptions, check_options, embed_texts, load_pipeline
from onnxpipe.corpus.errors import CorpusDependencyError
from onnxpipe.errors import InvalidInputError, InvalidOptionError

RAY_DATA_INSTALL = "pip install 'onnxpipe[ray-data]'"


class EmbedBatches:
    """A Ray Data `map_batches` callable class: loads one feature-extraction pipeline per actor and adds an
    `output_column` of float32 vectors (one row each, in batch order) to numpy batches."""

    def __init__(self, model: str, column: str = "text", output_column: str = "embedding", pooling: str = "auto",
                 normalize: bool = False, prompt_name: Optional[str] = None, prompt: Optional[str] = None,
                 batch_size: int = 32, dtype: Optional[str] = None, device: Union[str, int] = "cpu",
                 threads: Optional[int] = None):
        self.column = column
        self.output_column = output_column
        self.options = EmbedOptions(pooling, normalize, prompt_name, prompt, batch_size)
        self.pipe = load_pipeline(model, dtype, device, threads)
        check_options(self.pipe, self.options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.column not in batch:
            raise InvalidInputError(f"the dataset has no column {self.column!r}; it has {sorted(batch)}. Pass column=.")
        texts = list(batch[self.column])
        for position, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise InvalidInputError(f"column {self.column!r} holds {text!r} (position {position} of a batch of "
                                        f"{len(texts)}); every row needs a non-empty string.")
        if not texts:  # an empty block still gets a column of the right width
            dim = embed_texts(self.pipe, ["width"], self.options).shape[1]
            return {**batch, self.output_column: np.zeros((0, dim), dtype=np.float32)}
        return {**batch, self.output_column: embed_texts(self.pipe, texts, self.options)}


def embed_dataset(ds: Any, model: str, column: str = "text", *, output_column: str = "embedding",
                  pooling: str = "auto", normalize: bool = False, prompt_name: Optional[str] = None,
                  prompt: Optional[str] = None, batch_size: int = 256, model_batch_size: int = 32,
                  concurrency: Union[int, tuple[int, int]] = 1, num_cpus: float = 1, dtype: Optional[str] = None,
                  device: Union[str, int] = "cpu", threads: Optional[int] = 1, preserve_order: bool = True) -> Any:
    """`ds` (a ray.data.Dataset) with `output_column` added: each row's `column` text embedded as `onnxpipe embed`
    does, by an actor pool of `concurrency` actors (an int, or (min, max) to autoscale), each holding one pipeline
    and reserving `num_cpus` CPUs, fed `batch_size` rows at a time and running `model_batch_size` texts per model
    call with `threads` onnxruntime threads. `preserve_order=True` sets Ray's `preserve_order` on the dataset's
    DataContext (shared with the datasets it derives from) so rows come out in input order."""
    if not hasattr(ds, "map_batches"):
        raise InvalidOptionError(f"embed_dataset takes a ray.data.Dataset; got {type(ds).__name__}.")
    for name, value in (("batch_size", batch_size), ("model_batch_size", model_batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidOptionError(f"{name} must be an int >= 1; got {value!r}.")
    sizes = concurrency if isinstance(concurrency, tuple) else (concurrency,)
    if len(sizes) not in (1, 2) or sizes[0] > sizes[-1] or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise InvalidOptionError(f"concurrency must be an int >= 1 or a (min, max) pair of them; got {concurrency!r}.")
    EmbedOptions(pooling, normalize, prompt_name, prompt, model_batch_size)  # checked here, not in a remote actor
    try:
        from ray.data import ActorPoolStrategy
    except ImportError as exc:
        raise CorpusDependencyError(f"embed_dataset needs Ray Data (ray, pandas, pyarrow). Install it with: {RAY_DATA_INSTALL}") from exc
    pool = ActorPoolStrategy(size=sizes[0]) if len(sizes) == 1 else ActorPoolStrategy(min_size=sizes[0], max_size=sizes[1])
    out = ds.map_batches(
        EmbedBatches,
        fn_constructor_kwargs={"model": str(model), "column": column, "output_column": output_column,
                               "pooling": pooling, "normalize": normalize, "prompt_name": prompt_name,
                               "prompt": prompt, "batch_size": model_batch_size, "dtype": dtype,
                               "device": device, "threads": threads},
        batch_size=batch_size, batch_format="numpy", compute=pool, num_cpus=num_cpus,
    )
    if preserve_order:
        out.context.execution_options.preserve_order = True
    return out
