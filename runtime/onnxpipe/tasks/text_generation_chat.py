"""Chat templates rendered with jinja2 exactly as transformers' `tokenizer.apply_chat_template` renders them.

Same environment (sandboxed, trim_blocks, lstrip_blocks, loop controls, a `{% generation %}` tag), same
globals (`raise_exception`, `strftime_now`), the same `tojson` filter, the tokenizer's special tokens as
variables, and the same `continue_final_message` trimming. Templates come from `chat_template.jinja`,
`additional_chat_templates/*.jinja`, or tokenizer_config.json's `chat_template`, in transformers' order.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any, Mapping, Optional, Sequence, Union

from onnxpipe.errors import InvalidInputError, MissingModelFileError
from onnxpipe.model_folder import ModelFolder
from onnxpipe.text.tokenizer import token_content

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "

Template = Union[str, dict[str, str]]


def load_chat_template(folder: ModelFolder) -> Optional[Template]:
    """The folder's chat template(s): one string, a {name: template} dict, or None when there is none."""
    templates: dict[str, str] = {}
    default = folder.path / "chat_template.jinja"
    if default.is_file():
        templates["default"] = default.read_text(encoding="utf-8")
    extra = folder.path / "additional_chat_templates"
    if extra.is_dir():
        for path in sorted(extra.glob("*.jinja")):
            templates[path.stem] = path.read_text(encoding="utf-8")
    if len(templates) == 1 and "default" in templates:
        return templates["default"]
    if templates:
        return templates
    stored = folder.read_json("tokenizer_config.json").get("chat_template")
    if isinstance(stored, (list, tuple)):
        return {entry["name"]: entry["template"] for entry in stored}
    return stored if isinstance(stored, str) else None


def special_tokens(folder: ModelFolder) -> dict[str, Any]:
    """The tokenizer's special tokens as transformers' `special_tokens_map` gives them to templates."""
    sources = (folder.read_json("tokenizer_config.json"), folder.read_json("special_tokens_map.json"))
    found: dict[str, Any] = {}
    for name in (*SPECIAL_TOKEN_NAMES, "additional_special_tokens"):
        for source in sources:
            value = source.get(name)
            if isinstance(value, list):
                value = [token_content(v) for v in value]
            else:
                value = token_content(value)
            if value:
                found[name] = value
                break
    return found


@lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(Extension):
        """`{% generation %}...{% endgeneration %}` renders its body (transformers tracks assistant spans there)."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


class ChatTemplate:
    """A model's chat template plus its special tokens; `render` gives the prompt text of one conversation."""

    def __init__(self, template: Optional[Template], tokens: Mapping[str, Any], where: str = "the model folder"):
        self.template = template
        self.tokens = dict(tokens)
        self.where = where

    @classmethod
    def from_folder(cls, folder: ModelFolder) -> ChatTemplate:
        return cls(load_chat_template(folder), special_tokens(folder), str(folder.path))

    def source(self) -> str:
        """The template text to use (a dict of templates needs a 'default' one, as in transformers)."""
        if self.template is None:
            raise InvalidInputError(
                f"{self.where} has no chat template (no chat_template.jinja and no 'chat_template' in "
                "tokenizer_config.json), so chat messages cannot be turned into a prompt. Pass a plain string "
                "prompt instead, or add the model's chat template to the folder."
            )
        if isinstance(self.template, dict):
            if "default" not in self.template:
                raise MissingModelFileError(
                    f"{self.where} has several chat templates and none named 'default': {sorted(self.template)}."
                )
            return self.template["default"]
        return self.template

    def render(
        self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool, continue_final_message: bool
    ) -> str:
        """The prompt text of `messages`, as `apply_chat_template(messages, tokenize=False, ...)` returns it."""
        if continue_final_message and add_generation_prompt:
            raise InvalidInputError(
                "continue_final_message and add_generation_prompt are not compatible: the first continues the last "
                "message, the second starts a new assistant message."
            )
        compiled = _compile(self.source())
        chat = [dict(m) for m in messages]
        final = None
        if continue_final_message:
            final = chat[-1]["content"]
            if not isinstance(final, str):
                raise InvalidInputError("continue_final_message needs the final message's content to be a string.")
            chat[-1]["content"] = final + _CONTINUE_TAG
        rendered = compiled.render(
            messages=chat, tools=None, documents=None, add_generation_prompt=add_generation_prompt, **self.tokens
        )
        if final is None:
            return rendered
        if final.strip() not in rendered or _CONTINUE_TAG.strip() not in rendered:
            raise InvalidInputError(
                "continue_final_message is set but the final message does not appear in the chat after applying the "
                "chat template (the template drops part of it)."
            )
        at = rendered.rindex(_CONTINUE_TAG.strip())
        if rendered[at : at + len(_CONTINUE_TAG)] == _CONTINUE_TAG:
            return rendered[:at]
        return rendered[:at].rstrip()
