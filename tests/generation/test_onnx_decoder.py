"""The ONNX Decoder adapters: logits equal torch's step by step (with and without the KV cache, left-padded
batches), select() reorders rows, and the IO-binding plan says which tensors live on the device."""

from __future__ import annotations

import types
from dataclasses import replace

import numpy as np
import pytest

from onnxpipe.errors import CorruptModelError, InvalidInputError
from onnxpipe.generation.io_binding import BindingPlan, BoundRunner, plan_step
from onnxpipe.generation.kv_cache import CacheLayout, position_ids
from onnxpipe.generation.onnx_decoder import OnnxDecoder
from onnxpipe.generation.onnx_seq2seq import OnnxSeq2Seq
from onnxpipe.model_folder import ModelFolder
from onnxpipe.session import OnnxSession

ATOL = 1e-4  # ONNX vs torch fp32 on these tiny large-init models: ~2e-5 measured on logits of magnitude ~10


def tolerance(reference: np.ndarray) -> float:
    """1e-4 x max(1, max|reference|), as the export validation scales it: the large-init T5 has logits in the
    hundreds, where float32 noise between graphs reaches ~2e-4."""
    return ATOL * max(1.0, float(np.abs(reference).max()))

# two prompts of different lengths, the first left-padded (pad id 1 is never attended to)
PROMPTS = np.array([[1, 1, 1, 40, 41, 42, 43], [50, 51, 52, 53, 54, 55, 56]], dtype=np.int64)
PROMPT_MASK = np.array([[0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]], dtype=np.int64)
NEXT = [[60, 61], [62, 63], [64, 65]]  # tokens fed after the prompt, one per row per step


def _session(folder, stem):
    return OnnxSession(ModelFolder.open(folder).onnx_file("fp32", "cpu", stem))


@pytest.fixture(scope="module")
def causal(generation_models):
    """arch -> (ONNX session of model.onnx, config, torch model)."""
    import transformers

    built = {}

    def get(arch):
        if arch not in built:
            folder = generation_models.get(arch).onnx
            model = transformers.AutoModelForCausalLM.from_pretrained(str(generation_models.checkpoint(arch))).eval()
            built[arch] = (_session(folder, "model"), ModelFolder.open(folder).config, model)
        return built[arch]

    return get


@pytest.fixture(scope="module")
def seq2seq(generation_models):
    """arch -> (encoder session, merged decoder session, folder, config, torch model)."""
    import transformers

    built = {}

    def get(arch):
        if arch not in built:
            folder = generation_models.get(arch).onnx
            model = transformers.AutoModelForSeq2SeqLM.from_pretrained(str(generation_models.checkpoint(arch))).eval()
            built[arch] = (_session(folder, "encoder_model"), _session(folder, "decoder_model_merged"), folder,
                           ModelFolder.open(folder).config, model)
        return built[arch]

    return get


def _torch_causal_logits(model, ids, mask):
    """transformers' last-position logits for a left-padded batch (position ids as generate() derives them)."""
    import torch

    positions = torch.tensor(position_ids(mask, ids.shape[1]))
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=positions)
    return out.logits[:, -1, :].numpy()


def _run_causal(decoder, steps=NEXT):
    """Logits after the prompt and after each of `steps`; also the final ids and mask."""
    state = decoder.prepare(PROMPTS, PROMPT_MASK)
    logits, state = decoder.step(state, PROMPTS, PROMPT_MASK)
    ids, mask, seen = PROMPTS, PROMPT_MASK, [logits]
    for tokens in steps:
        new = np.array(tokens, dtype=np.int64)[:, None]
        ids = np.concatenate([ids, new], axis=1)
        mask = np.concatenate([mask, np.ones_like(new)], axis=1)
        logits, state = decoder.step(state, new, mask)
        seen.append(logits)
    return seen, ids, mask


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_decoder_only_logits_equal_torch_step_by_step(causal, arch):
    session, config, model = causal(arch)
    seen, ids, mask = _run_causal(OnnxDecoder(session, config))
    for step, logits in enumerate(seen):
        width = PROMPTS.shape[1] + step
        reference = _torch_causal_logits(model, ids[:, :width], mask[:, :width])
        np.testing.assert_allclose(logits, reference, atol=tolerance(reference), rtol=0, err_msg=f"step {step}")
        assert logits.dtype == np.float32 and logits.shape == (2, reference.shape[1])
    # the rows see different prompts: their logits differ (the model is not degenerate)
    assert np.abs(seen[0][0] - seen[0][1]).max() > 0.1


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_left_padding_equals_the_unpadded_prompt(causal, arch):
    session, config, _ = causal(arch)
    decoder = OnnxDecoder(session, config)
    padded, _, _ = _run_causal(decoder)
    alone = PROMPTS[:1, 3:]
    state = decoder.prepare(alone, np.ones_like(alone))
    logits, state = decoder.step(state, alone, np.ones_like(alone))
    np.testing.assert_allclose(logits[0], padded[0][0], atol=1e-5, rtol=0)
    logits, _ = decoder.step(state, np.array([[60]]), np.ones((1, alone.shape[1] + 1), dtype=np.int64))
    np.testing.assert_allclose(logits[0], padded[1][0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_without_cache_and_with_io_binding_equal_the_cached_run(causal, arch):
    session, config, _ = causal(arch)
    cached, _, _ = _run_causal(OnnxDecoder(session, config))
    for decoder in (OnnxDecoder(session, config, use_cache=False), OnnxDecoder(session, config, io_binding=True)):
        other, _, _ = _run_causal(decoder)
        for a, b in zip(cached, other):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_cache_is_handed_back_without_copies(causal):
    """The next past is exactly the arrays onnxruntime returned as present: no numpy concatenation or copy."""
    session, config, _ = causal("gpt2")
    returned = []

    def run(feeds, outputs=None):
        result = session.run(feeds, outputs)
        returned.append((feeds, result))
        return result

    recording = types.SimpleNamespace(
        inputs=session.inputs, output_names=session.output_names, providers=session.providers, session=session.session, run=run
    )
    decoder = OnnxDecoder(recording, config)
    state = decoder.prepare(PROMPTS, PROMPT_MASK)
    _, state = decoder.step(state, PROMPTS, PROMPT_MASK)
    mask = np.concatenate([PROMPT_MASK, np.ones((2, 1), dtype=np.int64)], axis=1)
    _, after = decoder.step(state, np.array([[60], [61]]), mask)
    first_feeds, first_out = returned[0]
    second_feeds, second_out = returned[1]
    assert all(first_feeds[name].shape[2] == 0 for name in decoder.layout.past_names)  # empty first cache
    for name in decoder.layout.past_names:
        present = decoder.layout.present_of[name]
        assert state.past[name] is first_out[present]
        assert second_feeds[name] is first_out[present]
        assert after.past[name] is second_out[present] and after.past[name].shape[2] == PROMPTS.shape[1] + 1
    assert after.seen == PROMPTS.shape[1] + 1


def test_select_reorders_and_repeats_rows(causal):
    session, config, _ = causal("llama")
    decoder = OnnxDecoder(session, config)
    state = decoder.prepare(PROMPTS, PROMPT_MASK)
    _, state = decoder.step(state, PROMPTS, PROMPT_MASK)
    rows = np.array([1, 0, 1])
    picked = decoder.select(state, rows)
    mask = np.concatenate([PROMPT_MASK, np.ones((2, 1), dtype=np.int64)], axis=1)
    both, _ = decoder.step(state, np.array([[60], [60]]), mask)
    reordered, after = decoder.step(picked, np.array([[60], [60], [60]]), mask[rows])
    np.testing.assert_allclose(reordered, both[rows], atol=1e-6, rtol=0)
    assert after.batch == 3 and all(v.shape[0] == 3 for v in after.past.values())


def test_step_refuses_a_mask_of_the_wrong_width(causal):
    session, config, _ = causal("gpt2")
    decoder = OnnxDecoder(session, config)
    with pytest.raises(InvalidInputError, match="attention_mask"):
        decoder.step(decoder.prepare(PROMPTS, PROMPT_MASK), PROMPTS, PROMPT_MASK[:, 1:])


# -- encoder-decoder -----------------------------------------------------------------------------

ENC_IDS = np.array([[20, 21, 22, 23, 24, 2], [30, 31, 32, 2, 1, 1]], dtype=np.int64)
ENC_MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=np.int64)


def _run_seq2seq(decoder, start, steps=NEXT):
    state = decoder.prepare(ENC_IDS, ENC_MASK)
    dec = np.full((2, 1), start, dtype=np.int64)
    logits, state = decoder.step(state, dec, np.ones_like(dec))
    seen = [logits]
    for tokens in steps:
        new = np.array(tokens, dtype=np.int64)[:, None]
        dec = np.concatenate([dec, new], axis=1)
        logits, state = decoder.step(state, new, np.ones_like(dec))
        seen.append(logits)
    return seen, dec


@pytest.mark.parametrize("arch", ["t5", "bart", "marian"])
def test_seq2seq_logits_equal_torch_step_by_step(seq2seq, arch):
    import torch

    encoder, merged, _, config, model = seq2seq(arch)
    start = config["decoder_start_token_id"]
    seen, dec = _run_seq2seq(OnnxSeq2Seq(encoder, merged, config), start)
    for step, logits in enumerate(seen):
        with torch.no_grad():
            out = model(input_ids=torch.tensor(ENC_IDS), attention_mask=torch.tensor(ENC_MASK),
                        decoder_input_ids=torch.tensor(dec[:, : step + 1]))
        reference = out.logits[:, -1, :].numpy()
        np.testing.assert_allclose(logits, reference, atol=tolerance(reference), rtol=0, err_msg=f"step {step}")
    assert np.abs(seen[0][0] - seen[0][1]).max() > 0.1  # different inputs, different logits


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_seq2seq_variants_equal_the_merged_decoder(seq2seq, arch):
    encoder, merged, folder, config, _ = seq2seq(arch)
    start = config["decoder_start_token_id"]
    reference, _ = _run_seq2seq(OnnxSeq2Seq(encoder, merged, config), start)
    variants = [
        OnnxSeq2Seq(encoder, merged, config, use_cache=False),
        OnnxSeq2Seq(encoder, merged, config, io_binding=True),
    ]
    if ModelFolder.open(folder).variants("decoder_with_past_model"):
        variants.append(OnnxSeq2Seq(encoder, _session(folder, "decoder_with_past_model"), config,
                                    first_session=_session(folder, "decoder_model")))
    for decoder in variants:
        seen, _ = _run_seq2seq(decoder, start)
        for a, b in zip(reference, seen):  # float noise of different graphs
            np.testing.assert_allclose(a, b, atol=tolerance(a), rtol=0)


def test_seq2seq_keeps_the_first_steps_cross_attention_cache(seq2seq):
    encoder, merged, _, config, _ = seq2seq("bart")
    decoder = OnnxSeq2Seq(encoder, merged, config)
    state = decoder.prepare(ENC_IDS, ENC_MASK)
    start = np.full((2, 1), config["decoder_start_token_id"], dtype=np.int64)
    _, state = decoder.step(state, start, np.ones_like(start))
    cross = {name: state.past[name] for name in decoder.layout.cross_attention}
    assert cross and all(v.shape[2] == ENC_IDS.shape[1] for v in cross.values())
    _, state = decoder.step(state, np.array([[60], [61]]), np.ones((2, 2), dtype=np.int64))
    assert all(state.past[name] is value for name, value in cross.items())
    rows = np.array([1, 1, 0])
    picked = decoder.select(state, rows)
    np.testing.assert_array_equal(picked.encoder["encoder_attention_mask"], ENC_MASK[rows])
    assert all(picked.past[name].shape[0] == 3 for name in cross)


def test_beam_reorders_within_a_prompt_leave_the_encoder_side_in_place(seq2seq):
    """Beams of one prompt carry copies of its encoder output and cross-attention cache: reordering them copies only
    the self-attention cache, and a reorder across prompts still moves everything."""
    encoder, merged, _, config, _ = seq2seq("bart")
    decoder = OnnxSeq2Seq(encoder, merged, config)
    state = decoder.select(decoder.prepare(ENC_IDS, ENC_MASK), np.array([0, 0, 1, 1]))  # 2 beams per prompt
    start = np.full((4, 1), config["decoder_start_token_id"], dtype=np.int64)
    _, state = decoder.step(state, start, np.ones_like(start))
    within = decoder.select(state, np.array([1, 1, 3, 2]))
    assert within.encoder is state.encoder
    assert all(within.past[n] is state.past[n] for n in decoder.layout.cross_attention)
    self_attention = [n for n in state.past if n not in decoder.layout.cross_attention]
    assert self_attention and all(within.past[n] is not state.past[n] for n in self_attention)
    across = decoder.select(state, np.array([2, 3, 0, 1]))
    np.testing.assert_array_equal(across.encoder["encoder_attention_mask"], ENC_MASK[[1, 1, 0, 0]])
    name = next(iter(decoder.layout.cross_attention))
    np.testing.assert_array_equal(across.past[name], state.past[name][[2, 3, 0, 1]])
    # stepping on after a within-prompt reorder equals stepping on a state reordered by copying everything
    copied = replace(within, encoder={k: v.copy() for k, v in state.encoder.items()}, origin=None,
                     past={k: np.array(v[[1, 1, 3, 2]]) for k, v in state.past.items()})
    token = np.array([[60], [61], [62], [63]])
    a, _ = decoder.step(within, token, np.ones((4, 2), dtype=np.int64))
    b, _ = decoder.step(copied, token, np.ones((4, 2), dtype=np.int64))
    np.testing.assert_allclose(a, b, atol=1e-6)


# -- pure pieces -----------------------------------------------------------------------------------

def test_position_ids_follow_transformers_for_left_padding():
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 1, 1]])
    np.testing.assert_array_equal(position_ids(mask, 5), [[1, 1, 0, 1, 2], [0, 1, 2, 3, 4], [1, 0, 1, 1, 2]])
    np.testing.assert_array_equal(position_ids(mask, 1), [[2], [4], [2]])


def _layout(names=("past_key_values.0.key", "past_key_values.0.value"), outputs=None, shape=("b", 2, "s", 8), config=None):
    outputs = outputs if outputs is not None else ["logits"] + [n.replace("past_key_values", "present") for n in names]
    inputs = {"input_ids": "tensor(int64)", **{n: "tensor(float)" for n in names}}
    return CacheLayout.from_graph(inputs, {n: list(shape) for n in names}, outputs, config or {})


def test_cache_layout_reads_names_shapes_and_config():
    layout = _layout()
    assert layout.past_names == ("past_key_values.0.key", "past_key_values.0.value")
    assert layout.present_of["past_key_values.0.key"] == "present.0.key"
    assert layout.empty(3)["past_key_values.0.key"].shape == (3, 2, 0, 8)
    symbolic = _layout(shape=("b", "heads", "s", "dim"), config={"num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 64})
    assert symbolic.empty(1)["past_key_values.0.value"].shape == (1, 2, 0, 16)
    with pytest.raises(CorruptModelError, match="present.0.key"):
        _layout(outputs=["logits", "present.0.value"])
    with pytest.raises(CorruptModelError, match="head count"):
        _layout(shape=("b", "heads", "s", 8))
    cross = ("past_key_values.0.decoder.key", "past_key_values.0.encoder.key")
    layout = _layout(cross, outputs=["logits", "present.0.decoder.key"])  # decoder_with_past: no cross presents
    assert layout.self_attention == ("past_key_values.0.decoder.key",)
    assert layout.cross_attention == ("past_key_values.0.encoder.key",)


def test_binding_plan_keeps_the_cache_on_the_device():
    names = ("past_key_values.0.decoder.key", "past_key_values.0.encoder.key")
    layout = _layout(names)
    inputs = ["input_ids", "encoder_hidden_states", "use_cache_branch", *names]
    first = plan_step(inputs, layout, first_step=True, resident=["encoder_hidden_states"])
    assert first == BindingPlan(
        host_inputs=("input_ids", "use_cache_branch", *names),  # the empty first-step cache comes from the host
        device_inputs=("encoder_hidden_states",),
        device_outputs=("present.0.decoder.key", "present.0.encoder.key"),
        host_outputs=("logits",),
    )
    later = plan_step(inputs, layout, first_step=False, resident=["encoder_hidden_states"])
    assert later.device_inputs == ("encoder_hidden_states", *names)
    assert later.host_inputs == ("input_ids", "use_cache_branch")
    assert later.device_outputs == ("present.0.decoder.key",)  # cross-attention presents are dummies now
    assert plan_step(inputs, layout, first_step=False).host_inputs == ("input_ids", "encoder_hidden_states", "use_cache_branch")


def test_bound_runner_on_cpu_returns_device_values_and_host_logits(causal):
    session, config, _ = causal("gpt2")
    decoder = OnnxDecoder(session, config, io_binding=True)
    assert isinstance(decoder.runner, BoundRunner)
    state = decoder.prepare(PROMPTS, PROMPT_MASK)
    logits, state = decoder.step(state, PROMPTS, PROMPT_MASK)
    assert isinstance(logits, np.ndarray)
    value = next(iter(state.past.values()))
    assert not isinstance(value, np.ndarray) and value.device_name().lower() == "cpu"
    assert OnnxDecoder(session, config).runner is None  # plain session.run is the CPU default


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _cuda_available(), reason="needs onnxruntime's CUDAExecutionProvider (onnxruntime-gpu and a GPU)")
@pytest.mark.parametrize("arch", ["gpt2", "bart"])
def test_cuda_io_binding_equals_cpu(generation_models, arch):
    folder = generation_models.get(arch).onnx
    config = ModelFolder.open(folder).config
    if arch == "gpt2":
        cpu, _, _ = _run_causal(OnnxDecoder(_session(folder, "model"), config))
        gpu_session = OnnxSession(ModelFolder.open(folder).onnx_file("fp32", "cuda", "model"), "cuda")
        decoder = OnnxDecoder(gpu_session, config)
        assert decoder.runner is not None and decoder.runner.device_type == "cuda"
        gpu, _, _ = _run_causal(decoder)
    else:
        start = config["decoder_start_token_id"]
        cpu, _ = _run_seq2seq(OnnxSeq2Seq(_session(folder, "encoder_model"), _session(folder, "decoder_model_merged"), config), start)
        path = lambda stem: ModelFolder.open(folder).onnx_file("fp32", "cuda", stem)  # noqa: E731
        decoder = OnnxSeq2Seq(OnnxSession(path("encoder_model"), "cuda"), OnnxSession(path("decoder_model_merged"), "cuda"), config)
        gpu, _ = _run_seq2seq(decoder, start)
    # onnxruntime's CUDA provider computes fp32 MatMuls in TF32 by default: measured on an H200, CPU-vs-CUDA logits
    # differ by up to 4e-3 (gpt2) and 1.2e-2 (bart) with TF32, and by under 1e-5 with use_tf32=0
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(a, b, atol=2e-3 * max(1.0, float(np.abs(a).max())), rtol=0)
