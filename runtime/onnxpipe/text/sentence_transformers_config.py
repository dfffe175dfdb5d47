"""A sentence-transformers folder's own configuration, read as sentence-transformers reads it: `modules.json`
(Transformer, then Pooling, Dense, Normalize), each module's config and Dense weights, `sentence_bert_config.json`
(max_seq_length, do_lower_case) and `config_sentence_transformers.json` (prompts, default_prompt_name).

A folder without `modules.json` gets what `SentenceTransformer(folder)` builds for a plain transformers model: mean
pooling and nothing after it. Module types the runtime does not compute are recorded as a `problem`, raised only
when the sentence-embedding defaults are asked for, so such a folder still gives token vectors.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from onnxpipe.errors import InvalidOptionError, MissingModelFileError
from onnxpipe.maths import sigmoid
from onnxpipe.model_folder import ModelFolder
from onnxpipe.text.safetensors_file import read_safetensors

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# sentence-transformers 2.x/3.x pooling flags, in the order their vectors were concatenated
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# the Transformer module's config file, by the names sentence-transformers tries in turn
TRANSFORMER_CONFIG_FILES = (
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)
# modules.json class name -> what it is here; Dropout does nothing at inference
MODULE_KINDS = {"Transformer": "transformer", "Pooling": "pooling", "Dense": "dense", "Normalize": "normalize", "Dropout": "none"}
DENSE_WEIGHTS = "model.safetensors"


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype)


# torch activation class name -> numpy function
ACTIVATIONS = {
    "Identity": lambda x: x,
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0),
    "Sigmoid": sigmoid,
    "SiLU": lambda x: x * sigmoid(x),
    "GELU": _gelu,
}


@dataclass(frozen=True)
class Dense:
    """A Dense module: `activation(vectors @ weight.T + bias)` on the sentence embedding."""

    weight: np.ndarray  # (out_features, in_features)
    bias: Optional[np.ndarray]
    activation: str  # a key of ACTIVATIONS

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """The layer's output for a (..., in_features) array."""
        out = vectors @ self.weight.T
        if self.bias is not None:
            out = out + self.bias
        return ACTIVATIONS[self.activation](out).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Normalize:
    """A Normalize module: L2 norm 1 (torch's F.normalize, eps 1e-12)."""

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """The vectors divided by their L2 norm (along the last axis)."""
        return l2_normalize(vectors)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Divide by the L2 norm along the last axis, never by less than 1e-12 (torch.nn.functional.normalize)."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norm, 1e-12)).astype(np.float32, copy=False)


Step = Union[Dense, Normalize]


@dataclass(frozen=True)
class SentenceTransformersConfig:
    """What turns token vectors into the folder's sentence embedding, and the folder's prompts and length."""

    pooling_modes: tuple[str, ...] = ("mean",)
    include_prompt: bool = True
    steps: tuple[Step, ...] = ()  # after pooling, in modules.json order
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: Optional[str] = None
    max_seq_length: Optional[int] = None
    do_lower_case: bool = False
    from_modules: bool = False  # False: no modules.json, sentence-transformers' default (mean pooling)
    problem: Optional[str] = None  # why the sentence embedding cannot be computed here

    def check_usable(self) -> None:
        """InvalidOptionError when the folder's sentence embedding needs what onnxpipe does not compute."""
        if self.problem:
            raise InvalidOptionError(self.problem)

    def resolve_prompt(self, prompt: Any, prompt_name: Any, use_default: bool) -> Optional[str]:
        """The prompt text a call asks for (`prompt`, or the folder's prompt named `prompt_name`), else the folder's
        default prompt when `use_default`; InvalidOptionError naming the fix for a bad pair."""
        if prompt is not None and prompt_name is not None:
            raise InvalidOptionError(
                f"pass prompt= or prompt_name=, not both (got prompt={prompt!r}, prompt_name={prompt_name!r})."
            )
        if prompt is not None:
            if not isinstance(prompt, str):
                raise InvalidOptionError(f"prompt must be a string such as 'query: ', got {type(prompt).__name__}: {prompt!r}.")
            return prompt
        if prompt_name is not None:
            if not isinstance(prompt_name, str) or prompt_name not in self.prompts:
                known = sorted(self.prompts)
                raise InvalidOptionError(
                    f"prompt_name={prompt_name!r} is not a prompt of this model; "
                    + (f"its prompts (config_sentence_transformers.json) are {known}." if known else
                       "it defines no prompts (config_sentence_transformers.json): pass the text with prompt= instead.")
                )
            return self.prompts[prompt_name]
        if use_default and self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name)
        return None


def read_sentence_transformers_config(folder: ModelFolder) -> SentenceTransformersConfig:
    """The folder's sentence-transformers configuration (sentence-transformers' defaults where it has none)."""
    prompts, default_prompt_name, problem = _read_prompts(folder)
    modules = folder.read_json("modules.json")
    if not modules:
        transformer = _transformer_config(folder, "")
        return SentenceTransformersConfig(
            prompts=prompts, default_prompt_name=default_prompt_name, problem=problem,
            max_seq_length=_max_seq_length(transformer), do_lower_case=bool(transformer.get("do_lower_case", False)),
        )
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        return SentenceTransformersConfig(problem=f"{folder.path / 'modules.json'} is not a list of modules; restore it.")
    modules = sorted(modules, key=lambda m: int(m.get("idx", 0)))
    pooling: Optional[dict[str, Any]] = None
    transformer: dict[str, Any] = {}
    steps: list[Step] = []
    for position, module in enumerate(modules):
        kind_name = str(module.get("type", "")).rsplit(".", 1)[-1]
        kind = MODULE_KINDS.get(kind_name)
        path = str(module.get("path", "") or "")
        misplaced = (kind == "transformer") != (position == 0) or (kind in ("pooling", "dense") and position > 0 and (
            pooling is not None) == (kind == "pooling"))  # one Pooling, and Dense layers after it
        if kind is None or misplaced:
            problem = problem or (
                f"{folder.path} is a sentence-transformers model whose modules.json holds {module.get('type')!r} at "
                f"position {position}; onnxpipe computes Transformer, then Pooling, Dense, Normalize and Dropout. Use "
                "feature-extraction with pooling='none' (token vectors) and pool them yourself."
            )
            continue
        if kind == "transformer":
            transformer = _transformer_config(folder, path)
        elif kind == "pooling":
            pooling = _module_json(folder, path, "config.json")
        elif kind == "dense":
            dense, why = _dense(folder, path)
            if dense is None:
                problem = problem or why
            else:
                steps.append(dense)
        elif kind == "normalize" and pooling is not None:  # before pooling there is no sentence embedding to change
            steps.append(Normalize())
    if pooling is None:
        problem = problem or f"{folder.path / 'modules.json'} lists no Pooling module; onnxpipe needs one to make a sentence embedding."
        pooling = {}
    modes, pooling_problem = _pooling_modes(pooling)
    return SentenceTransformersConfig(
        pooling_modes=modes,
        include_prompt=bool(pooling.get("include_prompt", True)),
        steps=tuple(steps),
        prompts=prompts,
        default_prompt_name=default_prompt_name,
        max_seq_length=_max_seq_length(transformer),
        do_lower_case=bool(transformer.get("do_lower_case", False)),
        from_modules=True,
        problem=problem or pooling_problem,
    )


def _module_json(folder: ModelFolder, path: str, name: str) -> dict[str, Any]:
    rel = f"{path}/{name}" if path else name
    if not (folder.path / rel).is_file():
        raise MissingModelFileError(
            f"{folder.path} lists a module in {path or 'the root'} in modules.json, but has no {rel}; restore it or re-export the model."
        )
    return folder.read_json(rel)


def _transformer_config(folder: ModelFolder, path: str) -> dict[str, Any]:
    for name in TRANSFORMER_CONFIG_FILES:
        config = folder.read_json(f"{path}/{name}" if path else name)
        if config:
            return config
    return {}


def _max_seq_length(transformer: dict[str, Any]) -> Optional[int]:
    value = transformer.get("max_seq_length")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _read_prompts(folder: ModelFolder) -> tuple[dict[str, str], Optional[str], Optional[str]]:
    """(prompts, default_prompt_name, problem) of config_sentence_transformers.json."""
    config = folder.read_json("config_sentence_transformers.json")
    prompts = config.get("prompts") or {}
    where = folder.path / "config_sentence_transformers.json"
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        return {}, None, f"{where} has prompts that are not a mapping of names to strings: {prompts!r}."
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        return prompts, None, f"{where} names default_prompt_name {default!r}, which is not one of its prompts {sorted(prompts)}."
    return prompts, default, None


def _pooling_modes(config: dict[str, Any]) -> tuple[tuple[str, ...], Optional[str]]:
    """(modes, problem) of a Pooling config, new style (`pooling_mode`) or legacy (`pooling_mode_*_token` flags)."""
    mode = config.get("pooling_mode")
    if mode is None:
        modes = tuple(name for key, name in _LEGACY_POOLING_KEYS.items() if config.get(key, False)) or ("mean",)
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode) if isinstance(mode, list) else ()
    unknown = [m for m in modes if m not in POOLING_MODES]
    if not modes or unknown:
        return ("mean",), f"the Pooling module's pooling_mode {mode!r} is not one of {POOLING_MODES}."
    return modes, None


def _dense(folder: ModelFolder, path: str) -> tuple[Optional[Dense], str]:
    """(the Dense module at `path`, or None and why it cannot be used)."""
    config = _module_json(folder, path, "config.json")
    for key in ("module_input_name", "module_output_name"):
        if config.get(key, "sentence_embedding") not in ("sentence_embedding", None):
            return None, f"the Dense module in {path} reads or writes {config[key]!r}; onnxpipe applies Dense layers to the sentence embedding only."
    activation = str(config.get("activation_function") or "torch.nn.modules.activation.Tanh")
    name = activation.rsplit(".", 1)[-1]
    if not activation.startswith("torch."):
        # sentence-transformers does the same without trust_remote_code
        warnings.warn(f"Dense activation {activation!r} (in {path}) is not a torch class; using Tanh, as sentence-transformers does.",
                      UserWarning, stacklevel=3)
        name = "Tanh"
    if name not in ACTIVATIONS:
        return None, f"the Dense module in {path} uses activation {activation!r}; onnxpipe computes {sorted(ACTIVATIONS)}."
    weights_path = folder.path / path / DENSE_WEIGHTS
    if not weights_path.is_file():
        found = sorted(p.name for p in (folder.path / path).iterdir()) if (folder.path / path).is_dir() else []
        return None, (
            f"{folder.path / path} has no {DENSE_WEIGHTS} (it holds {found}); the runtime reads Dense weights from "
            "safetensors only. Export the checkpoint with `onnxpipe export`, which converts pytorch_model.bin."
        )
    tensors = read_safetensors(weights_path)
    weight = tensors.get("linear.weight")
    bias = tensors.get("linear.bias")
    shape = (config.get("out_features"), config.get("in_features"))
    if weight is None or weight.ndim != 2 or (None not in shape and weight.shape != shape):
        return None, f"{weights_path} has no linear.weight of shape {shape} (out_features, in_features)."
    if config.get("bias", True) and bias is None:
        return None, f"{weights_path} has no linear.bias, which {path}/config.json says the layer has."
    return Dense(weight.astype(np.float32), None if bias is None else bias.astype(np.float32), name), ""
