"""Mixed-precision 4-bit files: which MatMuls of a decoder a q4 recipe keeps at 8 bits (MatMulNBits bits=8).

Roles, by what the node computes (found from the graph's outputs and the exporter's module-path node names):

- lm_head: the MatMul that writes the `logits` output (directly or through Add / Cast / Reshape). It produces
  the scores whose argmax is the next token, and a tied head's table is also the token embedding
  (GatherBlockQuantized then reads it at 8 bits too);
- down_proj: each MLP's output projection (Llama / Qwen / Mistral `mlp.down_proj`, Whisper / OPT / BART `fc2`,
  GPT-2 `mlp.c_proj`), the layers llama.cpp's Q4_K_M keeps at more bits;
- edge_layers: every MatMul of the first and the last decoder layer;
- v_proj: each attention's value projection (`v_proj`), which Q4_K_M also keeps at more bits;
- attention: every projection of every attention block (query, key, value, output; Llama / BART / Whisper
  `self_attn` and `encoder_attn`, GPT-2 `attn`, T5 `SelfAttention` / `EncDecAttention`): on SmolLM2 they are a
  quarter of a layer's weights, and keeping them at 8 bits moved top-1 agreement from 0.809 (v_proj only) to 0.872.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

ROLES = ("lm_head", "down_proj", "edge_layers", "v_proj", "attention")
LOGITS = "logits"
PASS_THROUGH = ("Add", "Cast", "Reshape", "Identity", "Squeeze", "Unsqueeze")
DOWN_PROJ_NAMES = ("/mlp/down_proj/", "/fc2/", "/mlp/c_proj/", "/mlp/dense_4h_to_h/")
V_PROJ_NAMES = ("/self_attn/v_proj/", "/encoder_attn/v_proj/", "/attention/v_proj/")
ATTENTION_NAMES = ("/self_attn/", "/encoder_attn/", "/attention/", "/attn/", "/SelfAttention/", "/EncDecAttention/")
LAYER_INDEX = re.compile(r"/(?:layers|h|layer|blocks?)\.(\d+)/")


def eight_bit_matmuls(graph: Any, roles: Iterable[str]) -> list[str]:
    """Names of the MatMul nodes with a constant weight that `roles` keep at 8 bits (in graph order)."""
    roles = set(roles)
    unknown = roles - set(ROLES)
    if unknown:
        raise ValueError(f"Unknown 8-bit roles {sorted(unknown)}; choose from {', '.join(ROLES)}.")
    initializers = {init.name for init in graph.initializer}
    matmuls = [n for n in graph.node if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in initializers]
    chosen: set[str] = set()
    if "lm_head" in roles:
        chosen |= set(_logit_producers(graph, matmuls))
    if "down_proj" in roles:
        chosen |= {n.name for n in matmuls if any(part in n.name for part in DOWN_PROJ_NAMES)}
    if "v_proj" in roles:
        chosen |= {n.name for n in matmuls if any(part in n.name for part in V_PROJ_NAMES)}
    if "attention" in roles:
        chosen |= {n.name for n in matmuls if any(part in n.name for part in ATTENTION_NAMES)}
    if "edge_layers" in roles:
        indices = {int(m.group(1)) for n in matmuls if (m := LAYER_INDEX.search(n.name))}
        if indices:
            edges = {min(indices), max(indices)}
            chosen |= {n.name for n in matmuls if (m := LAYER_INDEX.search(n.name)) and int(m.group(1)) in edges}
    return [n.name for n in matmuls if n.name in chosen]


def _logit_producers(graph: Any, matmuls: list[Any]) -> list[str]:
    """The MatMuls whose output reaches the `logits` output through shape / type / bias-only nodes."""
    producers = {out: node for node in graph.node for out in node.output}
    names = {n.name for n in matmuls}
    found = []
    for output in graph.output:
        if output.name != LOGITS:
            continue
        node = producers.get(output.name)
        for _ in range(4):
            if node is None:
                break
            if node.name in names:
                found.append(node.name)
                break
            if node.op_type not in PASS_THROUGH:
                break
            node = producers.get(node.input[0])
    return found
