"""Hugging Face text-embeddings-inference (TEI) routes, so that TEI's clients work against `onnxpipe serve`:
`POST /embed`, `/embed_sparse`, `/rerank`, `/predict`, `/similarity`, `/tokenize`, `/decode` with TEI's request and response shapes
and its error bodies (`{"error", "error_type"}`) and status codes (400 empty, 413 batch size, 422 validation, 424 no
such model, 429 overloaded).

TEI serves one model; onnxpipe may serve several, so each route answers with the first served model (in `--model`
order) whose task fits it: /embed and /similarity a feature-extraction or sentence-similarity model, /embed_sparse a
sparse-embedding (SPLADE) or hybrid-embedding (BGE-M3) one, /rerank a text-ranking one, /predict a text-classification one; /tokenize and /decode the default model's tokenizer.
TEI's `truncate` defaults to false: an input past the model's limit is a 422, as TEI answers it.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, Optional, Sequence

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from onnxpipe.serving.coalesce import Job
from onnxpipe.serving.protocol import RequestError, deadline_of, parse_json, read_body
from onnxpipe.serving.state import ServerState
from onnxpipe.text.sentence_transformers_config import l2_normalize

Handler = Callable[[Request], Awaitable[Response]]

EMBEDDING_TASK = "feature-extraction"
SIMILARITY_TASKS = ("sentence-similarity", EMBEDDING_TASK)
SPARSE_TASKS = ("sparse-embedding", "hybrid-embedding")
#: TEI's error_type for each status it answers
ERROR_TYPES = {400: "empty", 413: "validation", 422: "validation", 424: "backend", 429: "overloaded", 503: "unhealthy"}


def tei_error(exc: RequestError) -> dict[str, Any]:
    """An error body in TEI's shape."""
    return {"error": exc.message, "error_type": ERROR_TYPES.get(exc.status, "backend")}


def validation(message: str) -> RequestError:
    return RequestError(422, "validation", message)


def served_model(state: ServerState, tasks: Sequence[str], what: str) -> str:
    """The first served model (in --model order) whose task is one of `tasks`; 424 as TEI answers a route its model
    does not serve."""
    for name, pipe in state.pipes.items():
        if getattr(pipe, "task", None) in tasks:
            return name
    served = {name: getattr(pipe, "task", None) for name, pipe in state.pipes.items()}
    raise RequestError(424, "backend", f"no served model is {what} (a {' or '.join(tasks)} model); served: {served}.")


def fields(body: bytes, required: Sequence[str], optional: Mapping[str, Any]) -> dict[str, Any]:
    """The request's JSON object with `optional` defaults filled in; 422 naming a missing or unknown field (TEI
    ignores unknown fields; onnxpipe refuses them, so that a misspelt option is not silently dropped)."""
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise validation(f"the body must be a JSON object, got {type(payload).__name__}.")
    missing = [name for name in required if name not in payload]
    unknown = sorted(set(payload) - set(required) - set(optional))
    if missing or unknown:
        raise validation(
            (f"missing field(s) {missing}; " if missing else "") + (f"unknown field(s) {unknown}; " if unknown else "")
            + f"this route takes {list(required)} and optionally {sorted(optional)}."
        )
    return {**optional, **payload}


def flag(request: dict[str, Any], name: str, null: Optional[bool] = None) -> bool:
    """A boolean field; `null` is what JSON null means for TEI's optional ones (truncate: the server's default, off)."""
    value = request[name]
    if value is None and null is not None:
        return null
    if not isinstance(value, bool):
        raise validation(f"{name} must be true or false, got {value!r}.")
    return value


def texts_of(value: Any, name: str, limit: int) -> tuple[list[str], bool]:
    """(texts, single) of a TEI `inputs` (a string or a list of strings); 400 when empty, 413 past the limit."""
    single = isinstance(value, str)
    texts = [value] if single else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise validation(f"{name} must be a string or a list of strings, got {str(value)[:80]!r}.")
    check_batch(len(texts), name, limit)
    return texts, single


def check_batch(count: int, name: str, limit: int) -> None:
    """400 for an empty batch and 413 past --max-client-batch-size, with TEI's messages."""
    if count == 0:
        raise RequestError(400, "empty", f"`{name}` cannot be empty")
    if count > limit:
        raise RequestError(413, "validation", f"batch size {count} > maximum allowed batch size {limit} (--max-client-batch-size)")


def check_direction(request: dict[str, Any]) -> None:
    """TEI's truncation_direction: onnxpipe truncates on the right only."""
    if request.get("truncation_direction", "Right") not in ("Right", "right"):
        raise validation(f"truncation_direction {request['truncation_direction']!r} is not supported: onnxpipe truncates on the right.")


async def run(state: ServerState, request: Request, name: str, inputs: Any, params: dict[str, Any]) -> Any:
    """One pipeline call on `name`'s batcher; a full queue is TEI's 429 (overloaded)."""
    request.state.model = name
    deadline = deadline_of(request.headers, state.config.timeout_s)
    try:
        [answer] = await state.infer(name, [Job(inputs, params)], deadline, request.is_disconnected)
    except RequestError as exc:
        if exc.kind == "queue_full":
            raise RequestError(429, "overloaded", exc.message, exc.headers) from None
        raise
    return answer


def embed_route(state: ServerState) -> Handler:
    """`POST /embed`: {inputs, truncate, truncation_direction, normalize (true), prompt_name, dimensions} -> one
    pooled vector per input (the --embedding-pooling of the server), cut to `dimensions` (Matryoshka) then normalized."""

    async def handler(request: Request) -> Response:
        body = fields(await read_body(request, state.config.max_body_bytes), ["inputs"],
                      {"truncate": None, "truncation_direction": "Right", "normalize": True, "prompt_name": None, "dimensions": None})
        check_direction(body)
        texts, _ = texts_of(body["inputs"], "inputs", state.config.max_client_batch_size)
        name = served_model(state, (EMBEDDING_TASK,), "an embedding model")
        params: dict[str, Any] = {"pooling": state.config.embedding_pooling, "normalize": False, "truncation": flag(body, "truncate", null=False)}
        if body["prompt_name"] is not None:
            params["prompt_name"] = body["prompt_name"]
        vectors = np.asarray(await run(state, request, name, texts, params), dtype=np.float32)
        dimensions = body["dimensions"]
        if dimensions is not None:
            if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 0 < dimensions <= vectors.shape[-1]:
                raise validation(f"dimensions must be an int from 1 to the model's {vectors.shape[-1]}, got {dimensions!r}.")
            vectors = vectors[:, :dimensions]
        if flag(body, "normalize"):
            vectors = l2_normalize(vectors)
        return JSONResponse(vectors.tolist())

    return handler


def embed_sparse_route(state: ServerState) -> Handler:
    """`POST /embed_sparse`: {inputs, truncate, truncation_direction, prompt_name} -> per input the non-zero entries
    [{index, value}] by ascending index: a sparse-embedding model's SPLADE vector, or a hybrid-embedding model's
    lexical weights (BGE-M3, which has no prompts)."""

    async def handler(request: Request) -> Response:
        body = fields(await read_body(request, state.config.max_body_bytes), ["inputs"],
                      {"truncate": None, "truncation_direction": "Right", "prompt_name": None})
        check_direction(body)
        texts, _ = texts_of(body["inputs"], "inputs", state.config.max_client_batch_size)
        name = served_model(state, SPARSE_TASKS, "a sparse embedding model")
        params: dict[str, Any] = {"truncation": flag(body, "truncate", null=False)}
        if state.pipes[name].task == "hybrid-embedding":
            if body["prompt_name"] is not None:
                raise validation(f"prompt_name {body['prompt_name']!r}: the served model {name!r} (hybrid-embedding) has no prompts.")
            params.update(return_dense=False, return_colbert=False)
        elif body["prompt_name"] is not None:
            params["prompt_name"] = body["prompt_name"]
        answer = await run(state, request, name, texts, params)
        vectors = [item.get("sparse", item) for item in answer]
        return JSONResponse([[{"index": i, "value": v} for i, v in zip(vector["indices"], vector["values"])] for vector in vectors])

    return handler


def rerank_route(state: ServerState) -> Handler:
    """`POST /rerank`: {query, texts, truncate, truncation_direction, raw_scores, return_text} -> [{index, score,
    text?}] best first."""

    async def handler(request: Request) -> Response:
        body = fields(await read_body(request, state.config.max_body_bytes), ["query", "texts"],
                      {"truncate": None, "truncation_direction": "Right", "raw_scores": False, "return_text": False})
        check_direction(body)
        if not isinstance(body["query"], str):
            raise validation(f"query must be a string, got {type(body['query']).__name__}.")
        texts, _ = texts_of(body["texts"], "texts", state.config.max_client_batch_size)
        name = served_model(state, ("text-ranking",), "a re-ranker")
        params = {"raw_scores": flag(body, "raw_scores"), "return_documents": flag(body, "return_text"),
                  "truncation": flag(body, "truncate", null=False)}
        ranking = await run(state, request, name, {"query": body["query"], "documents": texts}, params)
        return JSONResponse([{"index": r["corpus_id"], **({"text": r["text"]} if "text" in r else {}), "score": r["score"]}
                             for r in ranking])

    return handler


def predict_route(state: ServerState) -> Handler:
    """`POST /predict`: {inputs: text | [text, text_pair] | [[text] or [text, text_pair], ...], truncate, raw_scores}
    -> every label's {score, label} best first, per input."""

    async def handler(request: Request) -> Response:
        body = fields(await read_body(request, state.config.max_body_bytes), ["inputs"],
                      {"truncate": None, "truncation_direction": "Right", "raw_scores": False})
        check_direction(body)
        items, single = predict_inputs(body["inputs"], state.config.max_client_batch_size)
        name = served_model(state, ("text-classification",), "a classifier")
        params: dict[str, Any] = {"top_k": None, "truncation": flag(body, "truncate", null=False)}
        if flag(body, "raw_scores"):
            params["function_to_apply"] = "none"
        answer = await run(state, request, name, items, params)
        return JSONResponse(answer[0] if single else answer)

    return handler


def predict_inputs(value: Any, limit: int) -> tuple[list[dict[str, str]], bool]:
    """TEI's PredictInput as text-classification inputs: a string, a pair [a, b], or a batch of [a] / [a, b]."""
    def sequence(item: Any) -> dict[str, str]:
        if isinstance(item, str):
            return {"text": item}
        if isinstance(item, list) and len(item) in (1, 2) and all(isinstance(t, str) for t in item):
            return {"text": item[0], **({"text_pair": item[1]} if len(item) == 2 else {})}
        raise validation("inputs must be a string, a pair of strings [string, string] or a batch of mixed strings "
                         f"and pairs [[string], [string, string], ...]; got {str(item)[:80]!r}.")

    if isinstance(value, str):
        return [sequence(value)], True
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        if len(value) > 2:
            raise validation(f"a pair has 2 strings, got {len(value)}: send a batch as [[string], [string], ...].")
        return [sequence(value)], True
    if not isinstance(value, list):
        raise validation(f"inputs must be a string, a pair or a batch, got {type(value).__name__}.")
    check_batch(len(value), "inputs", limit)
    return [sequence(item) for item in value], False


def similarity_route(state: ServerState) -> Handler:
    """`POST /similarity`: {inputs: {source_sentence, sentences}, parameters: {truncate, truncation_direction,
    prompt_name}} -> one cosine similarity per sentence."""

    async def handler(request: Request) -> Response:
        body = fields(await read_body(request, state.config.max_body_bytes), ["inputs"], {"parameters": None})
        inputs, params = body["inputs"], body["parameters"] or {}
        if not isinstance(inputs, dict) or set(inputs) != {"source_sentence", "sentences"}:
            raise validation("inputs must be {\"source_sentence\": string, \"sentences\": [string, ...]}.")
        if not isinstance(params, dict) or set(params) - {"truncate", "truncation_direction", "prompt_name"}:
            raise validation("parameters takes truncate, truncation_direction and prompt_name.")
        options = {"truncate": None, "truncation_direction": "Right", "prompt_name": None, **params}
        check_direction(options)
        sentences, _ = texts_of(inputs["sentences"], "sentences", state.config.max_client_batch_size)
        if not isinstance(inputs["source_sentence"], str):
            raise validation("source_sentence must be a string.")
        name = served_model(state, SIMILARITY_TASKS, "an embedding model")
        call: dict[str, Any] = {"truncation": flag(options, "truncate", null=False)}
        if options["prompt_name"] is not None:
            call["prompt_name"] = options["prompt_name"]
        if state.pipes[name].task != EMBEDDING_TASK:  # sentence-similarity: the folder's own pooling, cosine
            return JSONResponse(await run(state, request, name, {"source_sentence": inputs["source_sentence"], "sentences": sentences}, call))
        call.update(pooling=state.config.embedding_pooling, normalize=True)
        vectors = np.asarray(await run(state, request, name, [inputs["source_sentence"], *sentences], call), dtype=np.float32)
        return JSONResponse((vectors[1:] @ vectors[0]).tolist())

    return handler


def tokenize_route(state: ServerState) -> Handler:
    """`POST /tokenize`: {inputs, add_special_tokens (true)} -> per input, [{id, text, special, start, stop}] with
    byte offsets into the input (special tokens: their own text, no offsets), as TEI answers."""

    async def handler(request: Request) -> Response:
        body = fields(await read_body(request, state.config.max_body_bytes), ["inputs"], {"add_special_tokens": True})
        texts, single = texts_of(body["inputs"], "inputs", state.config.max_client_batch_size)
        tokenizer = text_tokenizer(state)
        special = flag(body, "add_special_tokens")
        try:
            encodings = tokenizer.encode_batch(texts, add_special_tokens=special)
        except TypeError as exc:  # a lone surrogate: not valid text
            raise validation(f"an input is not valid Unicode text ({exc}).") from None
        return JSONResponse([tokens_of(encoding, text) for encoding, text in zip(encodings, texts)])

    return handler


def tokens_of(encoding: Any, text: str) -> list[dict[str, Any]]:
    """TEI's SimpleTokens of one encoding: char offsets turned into byte offsets of the UTF-8 input."""
    tokens = []
    for token_id, token, (start, stop), is_special in zip(encoding.ids, encoding.tokens, encoding.offsets,
                                                         encoding.special_tokens_mask):
        if is_special:
            tokens.append({"id": token_id, "text": token, "special": True, "start": None, "stop": None})
            continue
        begin, end = len(text[:start].encode("utf-8")), len(text[:stop].encode("utf-8"))
        tokens.append({"id": token_id, "text": text[start:stop], "special": False, "start": begin, "stop": end})
    return tokens


def decode_route(state: ServerState) -> Handler:
    """`POST /decode`: {ids: [int] or [[int], ...], skip_special_tokens (true)} -> one string per id list."""

    async def handler(request: Request) -> Response:
        body = fields(await read_body(request, state.config.max_body_bytes), ["ids"], {"skip_special_tokens": True})
        ids = body["ids"]
        batch = [ids] if isinstance(ids, list) and all(isinstance(i, int) for i in ids) else ids
        if not isinstance(batch, list) or not all(isinstance(row, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                                                                   for i in row) for row in batch):
            raise validation("ids must be a list of token ids or a list of such lists.")
        check_batch(len(batch), "ids", state.config.max_client_batch_size)
        tokenizer = text_tokenizer(state)
        size = tokenizer.get_vocab_size()
        bad = [i for row in batch for i in row if not 0 <= i < size]
        if bad:
            raise validation(f"token id {bad[0]} is outside the vocabulary (0 to {size - 1}).")
        return JSONResponse(tokenizer.decode_batch(batch, skip_special_tokens=flag(body, "skip_special_tokens")))

    return handler


def text_tokenizer(state: ServerState) -> Any:
    """The Rust tokenizer of the default model (else the first served model that has one); 424 when none has."""
    names = [state.config.default_model, *state.pipes]
    for name in names:
        encoder = getattr(state.pipes.get(name), "encoder", None)
        tokenizer = getattr(encoder, "tokenizer", None)
        if tokenizer is not None:
            return tokenizer
    raise RequestError(424, "backend", "no served model has a text tokenizer.")


def tei_info(state: ServerState) -> dict[str, Any]:
    """TEI's /info keys for the model its routes answer with (added to onnxpipe's /info)."""
    kinds = (("text-ranking", "reranker"), ("text-classification", "classifier"), ("feature-extraction", "embedding"),
             ("sentence-similarity", "embedding"))
    sources = {spec.name: spec.source for spec in state.config.models}
    for task, kind in kinds:
        name = next((n for n, p in state.pipes.items() if getattr(p, "task", None) == task), None)
        if name is None:
            continue
        pipe = state.pipes[name]
        encoder = getattr(pipe, "encoder", None)
        config = getattr(getattr(pipe, "folder", None), "config", {}) or {}
        detail: Optional[dict[str, Any]] = (
            {"pooling": state.config.embedding_pooling} if kind == "embedding"
            else {"id2label": config.get("id2label"), "label2id": config.get("label2id")}
        )
        return {
            "model_id": sources.get(name, name), "model_dtype": getattr(pipe, "dtype", None),
            "model_type": {kind: detail}, "max_input_length": getattr(encoder, "model_max_length", None),
            "max_client_batch_size": state.config.max_client_batch_size, "auto_truncate": False,
        }
    return {"max_client_batch_size": state.config.max_client_batch_size}
