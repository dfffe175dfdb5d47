"""text-generation: continue prompts (or chats) with a decoder-only model, as transformers' pipeline does.

Inputs: a string, a chat (a list of {"role", "content"} messages rendered with the model's chat template),
or a list of either. Each input gets a list of `num_return_sequences` records: `generated_text` (the prompt
plus the new text, only the new text with return_full_text=False, or the chat with the assistant's reply
appended) or `generated_token_ids` (return_tensors=True). Batches are padded on the left, whatever the
tokenizer's padding side, so batched results equal one-at-a-time results.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.generation.generate import generate, generation_lengths
from onnxpipe.generation.onnx_decoder import OnnxDecoder
from onnxpipe.options import check_bool
from onnxpipe.tasks.generation_base import UNSET, GenerationPipeline, first_stem
from onnxpipe.tasks.text_generation_chat import ChatTemplate

DECODER_STEMS = ("model", "decoder_model_merged", "decoder_model")


class Chat:
    """One conversation: a list of {"role", "content"} messages (transformers' pipeline wraps chats the same way)."""

    def __init__(self, messages: Sequence[Any]):
        for message in messages:
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise InvalidInputError(
                    f"A chat is a list of {{'role': ..., 'content': ...}} dicts; got {message!r:.80} in it."
                )
        if not messages:
            raise InvalidInputError("A chat needs at least one message.")
        self.messages = list(messages)


class TextGenerationPipeline(GenerationPipeline):
    """Generate text after prompts; options as transformers' TextGenerationPipeline plus every decoding option."""

    PIPELINE_DEFAULTS = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
    TASK_OPTIONS = {
        "return_full_text": None, "return_text": None, "return_tensors": None, "clean_up_tokenization_spaces": True,
        "prefix": None, "handle_long_generation": None, "stop_sequence": None, "truncation": None,
        "continue_final_message": None, "skip_special_tokens": True, "add_special_tokens": None,
    }

    def load_decoder(self, dtype: Optional[str]) -> OnnxDecoder:
        stem = first_stem(self.folder, DECODER_STEMS)
        session = self.open_session(stem, dtype)
        self.use_main_session(session, stem)
        return OnnxDecoder(session, self.folder.config)

    def setup(self) -> None:
        super().setup()
        self.chat_template = ChatTemplate.from_folder(self.folder)
        self.prefix = self.folder.config.get("prefix")

    # -- options -------------------------------------------------------------------------------
    def validate_options(self, options: dict[str, Any]) -> None:
        super().validate_options(options)
        full, text, tensors = options["return_full_text"], options["return_text"], options["return_tensors"]
        if full is not None and text is not None:
            raise InvalidOptionError("`return_text` is mutually exclusive with `return_full_text`.")
        if full is not None and tensors is not None:
            raise InvalidOptionError("`return_full_text` is mutually exclusive with `return_tensors`.")
        if tensors is not None and text is not None:
            raise InvalidOptionError("`return_text` is mutually exclusive with `return_tensors`.")
        if options["handle_long_generation"] not in (None, "hole"):
            raise InvalidOptionError(
                f"{options['handle_long_generation']} is not a valid value for `handle_long_generation` parameter "
                "expected [None, 'hole']."
            )
        for name in ("clean_up_tokenization_spaces", "skip_special_tokens"):
            check_bool(name, options[name])
        for name in ("truncation", "continue_final_message", "add_special_tokens", "return_full_text", "return_text", "return_tensors"):
            check_bool(name, options[name], optional=True)
        for name in ("prefix", "stop_sequence"):
            if options[name] is not None and not isinstance(options[name], str):
                raise InvalidOptionError(f"{name} must be a string, got {options[name]!r}.")
        if options["stop_sequence"] == "":
            raise InvalidOptionError("stop_sequence must be a non-empty string.")

    # -- inputs --------------------------------------------------------------------------------
    def split_inputs(self, inputs: Any) -> tuple[list[Any], bool]:
        """A string or one chat is a single input; a list of strings or of chats is several."""
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise InvalidInputError("text-generation got an empty list; pass a prompt, a chat, or a list of them.")
            if isinstance(inputs[0], dict):
                return [Chat(inputs)], True
            if isinstance(inputs[0], (list, tuple)):
                return [Chat(chat) for chat in inputs], False
            return list(inputs), False
        return [inputs], True

    def check_item(self, item: Any) -> Any:
        if isinstance(item, Chat):
            return item
        if not isinstance(item, str):
            raise InvalidInputError(
                f"text-generation takes a string, a chat (list of {{'role', 'content'}} dicts) or a list of those; "
                f"got {type(item).__name__}: {item!r:.80}."
            )
        if not item:
            raise InvalidInputError("The prompt is empty; give text to continue.")
        return item

    # -- running -------------------------------------------------------------------------------
    def run_items(self, items: Sequence[Any], options: dict[str, Any]) -> list[Any]:
        prefix = options["prefix"] if options["prefix"] is not None else (self.prefix or "")
        extra = self._length_overrides(prefix, options)
        if options["stop_sequence"] is not None:
            extra["eos_token_id"] = self.encode([options["stop_sequence"]], add_special_tokens=False)[0]
        config = self.resolve(options, extra)
        prompts = [self._prompt_ids(item, prefix, options, config) for item in items]
        longest = max(len(p) for p in prompts)
        self.check_positions(
            longest, generation_lengths(config, longest)[0], "prompt",
            "Shorten the prompt, pass truncation=True, or handle_long_generation='hole' (keeps the end of the prompt).",
        )
        pad_id = self._pad_id(config)
        results: list[Any] = []
        size = options["batch_size"]
        for start in range(0, len(items), size):  # input order, as transformers batches
            rows = prompts[start : start + size]
            input_ids, mask = self.pad_batch(rows, "left", pad_id)
            sequences = generate(
                self.decoder, input_ids, mask, config, streamer=options["streamer"], decode=self.raw_decode
            )
            per_input = sequences.reshape(len(rows), -1, sequences.shape[-1])
            for row, item in enumerate(items[start : start + size]):
                results.append(self._records(item, input_ids[row], per_input[row], options))
        return results

    def _length_overrides(self, prefix: str, options: dict[str, Any]) -> dict[str, Any]:
        """transformers lengthens max_length / min_length by the prefix's tokens when max_new_tokens is not given."""
        if not prefix:
            return {}
        flag = bool(options["add_special_tokens"])
        prefix_length = len(self.encode([prefix], add_special_tokens=flag)[0])
        given = self.generation_overrides(options)
        extra: dict[str, Any] = {}
        if "max_new_tokens" not in given:
            base = given.get("max_length") or self.resolve(self.defaults).max_length
            extra["max_length"] = base + prefix_length
        if "min_new_tokens" not in given and "min_length" in given:
            extra["min_length"] = given["min_length"] + prefix_length
        return extra

    def _prompt_ids(self, item: Any, prefix: str, options: dict[str, Any], config: Any) -> list[int]:
        limit, given = None, options["max_length"]
        if options["truncation"]:
            limit = given if given not in (UNSET, None) else self.encoder.model_max_length
        elif options["truncation"] is None and given not in (UNSET, None):
            limit = given  # transformers' tokenizer truncates to a given max_length unless truncation=False
        if isinstance(item, Chat):
            cont = options["continue_final_message"]
            if cont is None:
                cont = item.messages[-1]["role"] == "assistant"
            text = self.chat_template.render(item.messages, add_generation_prompt=not cont, continue_final_message=cont)
            ids = self.encode([text], add_special_tokens=False, limit=limit)[0]
        else:
            flag = options["add_special_tokens"]
            ids = self.encode([prefix + item], add_special_tokens=True if flag is None else flag, limit=limit)[0]
        if not ids:
            raise InvalidInputError(f"The prompt {item!r:.80} gives no tokens; give text the tokenizer can encode.")
        if options["handle_long_generation"] == "hole":
            ids = self._hole(ids, options)
        return ids

    def _hole(self, ids: list[int], options: dict[str, Any]) -> list[int]:
        """transformers' handle_long_generation='hole': keep the end of the prompt, leaving room for the new tokens."""
        given = self.generation_overrides(options)
        cur = len(ids)
        if "max_new_tokens" in given:
            new_tokens = given["max_new_tokens"]
        else:
            new_tokens = given.get("max_length", self.resolve(self.defaults).max_length) - cur
            if new_tokens < 0:
                raise InvalidOptionError("We cannot infer how many new tokens are expected: pass max_new_tokens.")
        limit = self.encoder.model_max_length
        if limit is not None and cur + new_tokens > limit:
            keep = limit - new_tokens
            if keep <= 0:
                raise InvalidOptionError(
                    "We cannot use `hole` to handle this generation: the number of desired tokens exceeds the "
                    f"model's max length ({limit})."
                )
            ids = ids[-keep:]
        return ids

    def _pad_id(self, config: Any) -> int:
        """The tokenizer's pad token, else EOS (transformers refuses to batch then; padding with EOS is safe
        since padded positions are masked and skipped when decoding)."""
        pad = self.tokenizer_pad_id()
        if pad is None:
            pad = config.pad_token_id if config.pad_token_id is not None else (config.eos_token_id or (None,))[0]
        if pad is None:
            pad = self.token_id("eos_token")
        return int(pad) if pad is not None else 0

    def _records(self, item: Any, input_row: np.ndarray, sequences: np.ndarray, options: dict[str, Any]) -> list[dict]:
        """transformers' postprocess for one input."""
        if options["return_tensors"]:
            return [{"generated_token_ids": [int(t) for t in seq]} for seq in sequences]
        full = options["return_full_text"] is not False  # return_text only excludes the other two, as in transformers
        skip, clean = options["skip_special_tokens"], options["clean_up_tokenization_spaces"]
        prompt_length = len(self.decode(input_row, skip_special_tokens=skip, clean_up=clean))
        records = []
        for seq in sequences:
            new_text = self.decode(seq, skip_special_tokens=skip, clean_up=clean)[prompt_length:]
            records.append({"generated_text": self._full_text(item, new_text, options) if full else new_text})
        return records

    def _full_text(self, item: Any, new_text: str, options: dict[str, Any]) -> Any:
        if isinstance(item, str):
            return item + new_text
        cont = options["continue_final_message"]
        if cont is None:
            cont = item.messages[-1]["role"] == "assistant"
        if cont:
            last = item.messages[-1]
            return list(item.messages[:-1]) + [{"role": last["role"], "content": last["content"] + new_text}]
        return list(item.messages) + [{"role": "assistant", "content": new_text}]
