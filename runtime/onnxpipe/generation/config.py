"""The generation options, resolved the way transformers 4.57 resolves them, and checked once.

As transformers' pipelines do (`_prepare_generation_config(use_model_defaults=True)` at pipeline init and
again in generate()): start from the library defaults updated with the pipeline's own defaults; the model's
generation_config.json fills every option still at its library default (so a pipeline default such as
num_beams=4 beats the model's value, and a model max_length drops the pipeline's max_new_tokens default);
then `task_specific_params`, the tokenizer's pad id if none, and last the call's keyword arguments.
Without a generation_config.json the model's config.json supplies the generation keys it holds
(`GenerationConfig.from_model_config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

from onnxpipe.errors import InvalidOptionError
from onnxpipe.generation.checks import check_values
from onnxpipe.options import is_number

#: transformers' GenerationConfig() defaults for the options onnxpipe implements
DEFAULTS: dict[str, Any] = {
    "max_length": 20,
    "max_new_tokens": None,
    "min_length": 0,
    "min_new_tokens": None,
    "early_stopping": False,
    "max_time": None,
    "stop_strings": None,
    "do_sample": False,
    "num_beams": 1,
    "use_cache": True,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "min_p": None,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "sequence_bias": None,
    "renormalize_logits": False,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "remove_invalid_values": False,
    "exponential_decay_length_penalty": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "num_return_sequences": 1,
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "decoder_start_token_id": None,
}

#: transformers options onnxpipe does not implement, with their inactive (default) value
UNIMPLEMENTED: dict[str, Any] = {
    "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
    "token_healing": False,
    "guidance_scale": None,
    "watermarking_config": None,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "constraints": None,
    "force_words_ids": None,
    "penalty_alpha": None,
    "dola_layers": None,
    "low_memory": None,
    "prompt_lookup_num_tokens": None,
    "max_matching_ngram_size": None,
    "assistant_early_exit": None,
    "prefill_chunk_size": None,
    "output_scores": False,
    "output_logits": None,
    "output_attentions": False,
    "output_hidden_states": False,
    "return_dict_in_generate": False,
    "assistant_model": None,
    "prefix_allowed_tokens_fn": None,
    "logits_processor": None,
    "stopping_criteria": None,
    "negative_prompt_ids": None,
    "negative_prompt_attention_mask": None,
    "synced_gpus": None,
    "custom_generate": None,
}

#: keys a generation_config.json may hold that do not change the generated tokens: read and ignored there
#: (passing them as call options still raises)
_INERT_FILE_KEYS = {
    "output_scores", "output_logits", "output_attentions", "output_hidden_states", "return_dict_in_generate",
    "cache_implementation", "cache_config", "return_legacy_cache", "compile_config", "disable_compile",
    "num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold",
    "assistant_lookbehind", "target_lookbehind", "is_assistant", "low_memory", "prefill_chunk_size",
    "transformers_version",
}

#: onnxpipe's own options (no transformers counterpart)
EXTRA: dict[str, Any] = {"seed": None}


@dataclass(frozen=True)
class GenerationConfig:
    """Every decoding option generate() reads; build it with resolve_generation_config (it validates)."""

    max_length: int = 20
    max_new_tokens: Optional[int] = None
    min_length: int = 0
    min_new_tokens: Optional[int] = None
    early_stopping: Union[bool, str] = False
    max_time: Optional[float] = None
    stop_strings: Optional[tuple[str, ...]] = None
    do_sample: bool = False
    num_beams: int = 1
    use_cache: bool = True
    temperature: float = 1.0
    top_k: Optional[int] = 50
    top_p: Optional[float] = 1.0
    min_p: Optional[float] = None
    typical_p: Optional[float] = 1.0
    epsilon_cutoff: Optional[float] = 0.0
    eta_cutoff: Optional[float] = 0.0
    repetition_penalty: Optional[float] = 1.0
    length_penalty: float = 1.0
    no_repeat_ngram_size: Optional[int] = 0
    bad_words_ids: Optional[tuple[tuple[int, ...], ...]] = None
    sequence_bias: Optional[tuple[tuple[tuple[int, ...], float], ...]] = None
    renormalize_logits: bool = False
    forced_bos_token_id: Optional[int] = None
    forced_eos_token_id: Optional[tuple[int, ...]] = None
    remove_invalid_values: bool = False
    exponential_decay_length_penalty: Optional[tuple[int, float]] = None
    suppress_tokens: Optional[tuple[int, ...]] = None
    begin_suppress_tokens: Optional[tuple[int, ...]] = None
    num_return_sequences: int = 1
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[tuple[int, ...]] = None
    decoder_start_token_id: Optional[int] = None
    seed: Optional[int] = None
    #: whether the call set max_length itself (transformers then keeps it as the total length)
    max_length_from_call: bool = False
    #: config.json's max_position_embeddings: caps the default length (20 new tokens) as transformers does
    max_position_embeddings: Optional[int] = None

    @property
    def mode(self) -> str:
        """'greedy', 'sample', 'beam' or 'beam_sample' (transformers' generation modes we implement)."""
        if self.num_beams == 1:
            return "sample" if self.do_sample else "greedy"
        return "beam_sample" if self.do_sample else "beam"

    def replace(self, **changes: Any) -> GenerationConfig:
        """A copy with `changes` applied and validated (keys as in resolve_generation_config's overrides)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(changes)
        return _build(values)


def known_options() -> list[str]:
    """Every option name resolve_generation_config accepts."""
    return sorted(set(DEFAULTS) | set(EXTRA))


def resolve_generation_config(
    generation_config: Mapping[str, Any],
    model_config: Mapping[str, Any],
    pipeline_defaults: Mapping[str, Any],
    overrides: Mapping[str, Any],
    *,
    task_params: Optional[Mapping[str, Any]] = None,
    tokenizer_pad_token_id: Optional[int] = None,
) -> GenerationConfig:
    """Merge the model's files, the pipeline's defaults and the call's options into a checked GenerationConfig.

    `generation_config` is the folder's generation_config.json ({} if absent), `model_config` its
    config.json, `pipeline_defaults` the task's `_default_generation_config` values, `overrides` the call's
    keyword arguments. `task_params` are the model's `task_specific_params[task]` without `prefix`, and
    `tokenizer_pad_token_id` the tokenizer's pad id (a pipeline sets it when the model has none).
    """
    model_values = _model_generation_values(generation_config or {}, model_config or {})
    _reject_options(pipeline_defaults, "pipeline default")
    values = dict(DEFAULTS)
    values.update(EXTRA)
    values.update(pipeline_defaults)
    _merge_model_values(values, model_values)  # the pipeline's __init__
    # pipelines/base.py: a model max_length beats the pipeline's own max_new_tokens default
    default_new = pipeline_defaults.get("max_new_tokens")
    if default_new is not None and values.get("max_new_tokens") == default_new and values.get("max_length") != 20:
        values["max_new_tokens"] = None
    if task_params:
        # GenerationConfig.update: keys that are not generation options are left unused, as in transformers
        known = set(DEFAULTS) | set(UNIMPLEMENTED)
        values.update({k: v for k, v in task_params.items() if k in known})
    if values.get("pad_token_id") is None and tokenizer_pad_token_id is not None:
        values["pad_token_id"] = tokenizer_pad_token_id
    _merge_model_values(values, model_values)  # generate() merges again (undoing what __init__ reset to a default)
    _reject_options(overrides, "option")
    values.update(overrides)
    values["max_length_from_call"] = overrides.get("max_length") is not None
    values["max_position_embeddings"] = model_config.get("max_position_embeddings") if model_config else None
    _reject_active_unimplemented(values)
    return _build({k: v for k, v in values.items() if k not in UNIMPLEMENTED})


# -- merging ------------------------------------------------------------------------------------------
def _library_default(key: str) -> Any:
    if key in DEFAULTS:
        return DEFAULTS[key]
    return UNIMPLEMENTED.get(key)


def _merge_model_values(values: dict[str, Any], model_values: Mapping[str, Any]) -> None:
    """transformers' use_model_defaults merge: a model value wins wherever `values` holds the library default;
    then temperature 0.0 means greedy."""
    for key, model_value in model_values.items():
        if values.get(key, UNIMPLEMENTED.get(key)) == _library_default(key) and model_value != _library_default(key):
            values[key] = model_value
    if values.get("temperature") == 0.0:
        values["do_sample"] = False


def _model_generation_values(generation_config: Mapping[str, Any], model_config: Mapping[str, Any]) -> dict:
    """The model's generation values: generation_config.json, else the generation keys of config.json."""
    known = set(DEFAULTS) | set(UNIMPLEMENTED)
    if generation_config:
        source = {k: v for k, v in generation_config.items() if not k.startswith("_") and k not in _INERT_FILE_KEYS}
        unknown = [k for k in source if k not in known]
        # keys transformers would keep as custom attributes but never reads in generate(): ignored
        return {k: v for k, v in source.items() if k not in unknown}
    values = {k: v for k, v in model_config.items() if k in known and v is not None}
    # composite models keep generation keys in their decoder / text sub-config
    for sub in ("text_config", "decoder"):
        sub_config = model_config.get(sub)
        if isinstance(sub_config, Mapping):
            for key, value in sub_config.items():
                if key in known and value is not None and values.get(key, _library_default(key)) == _library_default(key):
                    values[key] = value
    return values


def _reject_options(options: Mapping[str, Any], what: str) -> None:
    for key in options:
        if key in DEFAULTS or key in EXTRA:
            continue
        if key in UNIMPLEMENTED and _same(options[key], UNIMPLEMENTED[key]):
            continue  # the inactive value: lets a caller switch off what a model's generation config sets
        if key in UNIMPLEMENTED or key in _INERT_FILE_KEYS:
            raise InvalidOptionError(
                f"The generation {what} {key!r} is a transformers option that onnxpipe does not implement; "
                f"remove it. Implemented options: {', '.join(known_options())}."
            )
        if key == "generation_config":
            raise InvalidOptionError(
                "generation_config= is not accepted; pass the generation options as keyword arguments instead."
            )
        raise InvalidOptionError(
            f"Unknown generation {what} {key!r}. Known options: {', '.join(known_options())}."
        )


def _same(value: Any, inactive: Any) -> bool:
    return value is inactive or (type(value) is type(inactive) and value == inactive) or (
        is_number(value) and isinstance(inactive, float) and value == inactive
    )


def _reject_active_unimplemented(values: Mapping[str, Any]) -> None:
    for key, inactive in UNIMPLEMENTED.items():
        if key in values and values[key] != inactive and key not in _INERT_FILE_KEYS:
            raise InvalidOptionError(
                f"The model's generation config sets {key}={values[key]!r}, which onnxpipe does not implement "
                f"(transformers would use it). Override it with {key}={inactive!r} to generate without it."
            )


def _build(values: dict[str, Any]) -> GenerationConfig:
    """A GenerationConfig of checked, normalized `values` (InvalidOptionError names a bad one)."""
    return GenerationConfig(**check_values(values))
