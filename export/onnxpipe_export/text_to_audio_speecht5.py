"""SpeechT5 text-to-speech: optimum's three graphs with the prenet's dropout masks as inputs, plus a tokenizer.json.

optimum (`text-to-audio`, model_kwargs={"vocoder": ...}) writes encoder_model.onnx (input_ids -> encoder_outputs,
encoder_attention_mask), decoder_model.onnx (the first step) and decoder_with_past_model.onnx (later steps; both
take the whole output_sequence and the speaker_embeddings) and decoder_postnet_and_vocoder.onnx (spectrogram ->
waveform). SpeechT5's decoder prenet applies dropout even in eval mode; optimum draws it with RandomUniformLike,
unseeded. Each draw is replaced here by an input `prenet_keep_mask.N` (1, decoder length, prenet units) of 0/1
values, so the runtime draws the masks itself (seeded) as transformers does: `_consistent_dropout` keeps a unit where
bernoulli(p) is 1 (probability p, not 1 - p) and scales by 1 / (1 - p). The slow SentencePiece character tokenizer
(spm_char.model) becomes a tokenizer.json (a Unigram over its character pieces), checked against
SpeechT5Tokenizer before it is written.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

from onnxpipe.tasks.text_to_audio_speecht5 import SpeechT5Graphs, generate_waveform

from .errors import ConversionError, first_line
from .waveform_check import waveform_figures

COMPONENTS = {
    "encoder": "encoder_model",
    "decoder": "decoder_model",
    "decoder_with_past": "decoder_with_past_model",
    "vocoder": "decoder_postnet_and_vocoder",
}
DEFAULT_VOCODER = "microsoft/speecht5_hifigan"  # what transformers' pipeline loads when given none
MASK_INPUT = "prenet_keep_mask.{}"
TOLERANCE = 1e-4  # max |waveform difference| relative to the waveform's peak, every dropout unit kept
CHECK_TEXTS = (
    "hello world", "  Leading and trailing   spaces ", "Café naïve, ＡＢＣ ﬁ", "unknown ∑∑ ⌘ chars 😀",
    "text with </s> inside", "Numbers 3.14!", "a",
)


def export_graphs(source: Path, vocoder: str, work: Path, staging: Path) -> dict[str, str]:
    """optimum's SpeechT5 export of `source` with `vocoder`, its dropout draws made inputs, into `staging`."""
    from optimum.exporters.onnx import main_export

    target = work / "optimum"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main_export(str(source), str(target), task="text-to-audio", model_kwargs={"vocoder": vocoder},
                        do_validation=False)
    except Exception as exc:
        raise ConversionError(
            f"optimum could not export SpeechT5 {str(source)!r} with the vocoder {vocoder!r}: {first_line(exc)}. "
            "Pass a SpeechT5HifiGan checkpoint (hub id or folder) as vocoder=."
        ) from exc
    units = int(json.loads((source / "config.json").read_text(encoding="utf-8"))["speech_decoder_prenet_units"])
    for stem in COMPONENTS.values():
        path = target / f"{stem}.onnx"
        if not path.is_file():
            raise ConversionError(f"optimum wrote no {path.name} for {str(source)!r}.")
        if stem.startswith("decoder_model") or stem.startswith("decoder_with_past"):
            _masks_as_inputs(path, staging / path.name, units)
        else:
            shutil.copyfile(path, staging / path.name)
    return dict(COMPONENTS)


def _masks_as_inputs(path: Path, destination: Path, units: int) -> None:
    """Replace each RandomUniformLike -> Greater -> Cast dropout mask by a float input prenet_keep_mask.N."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    nodes = list(graph.node)

    def consumer(name: str, op: str) -> Any:
        found = [n for n in nodes if name in n.input and n.op_type == op]
        if len(found) != 1:
            raise ConversionError(f"{path.name}: the prenet's dropout is not RandomUniformLike -> Greater -> Cast.")
        return found[0]

    removed, renames = [], {}
    randoms = [n for n in nodes if n.op_type == "RandomUniformLike"]
    if len(randoms) == 0:
        raise ConversionError(f"{path.name} has no prenet dropout draw; this optimum export is not the expected one.")
    for index, random in enumerate(randoms):
        greater = consumer(random.output[0], "Greater")
        cast = consumer(greater.output[0], "Cast")
        removed += [random, greater, cast]
        renames[cast.output[0]] = MASK_INPUT.format(index)
        graph.input.append(onnx.helper.make_tensor_value_info(
            MASK_INPUT.format(index), onnx.TensorProto.FLOAT, [1, "decoder_sequence_length", units]
        ))
    for node in removed:
        graph.node.remove(node)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    _drop_dead_nodes(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(destination))


def _drop_dead_nodes(graph: Any) -> None:
    """Remove nodes none of whose outputs is used (the ConstantOfShape that fed a removed draw)."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def build_tokenizer(source: Path) -> Any:
    """The tokenizers.Tokenizer equivalent of the checkpoint's SpeechT5Tokenizer (a SentencePiece char model)."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    proto = model_pb2.ModelProto()
    proto.ParseFromString((source / "spm_char.model").read_bytes())
    if proto.trainer_spec.model_type != model_pb2.TrainerSpec.CHAR:
        raise ConversionError("spm_char.model is not a SentencePiece character model; cannot convert it.")
    spec = proto.normalizer_spec
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    # a Unigram over single characters segments character by character and, as SentencePiece does, fuses a run of
    # unknown characters into one unk; the control pieces (<s>, </s>, <pad>) never match text (added tokens do)
    scores = [(p.piece, p.score if p.type == p.NORMAL else -1e9) for p in proto.pieces]
    tok = Tokenizer(Unigram(scores, unk_id=proto.trainer_spec.unk_id, byte_fallback=False))
    steps = [normalizers.Precompiled(spec.precompiled_charsmap)] if spec.precompiled_charsmap else []
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
    scheme = "always" if spec.add_dummy_prefix else "never"
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False)
    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    specials = [config.get(name, default) for name, default in
                (("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>"), ("pad_token", "<pad>"))]
    specials = [s["content"] if isinstance(s, dict) else s for s in specials]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials if s in vocab])
    eos = specials[1]
    tok.post_processor = processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A $B {eos}",
                                                       special_tokens=[(eos, vocab[eos])])
    return tok


def write_tokenizer(source: Path, staging: Path) -> None:
    """Write staging/tokenizer.json after checking it encodes CHECK_TEXTS as SpeechT5Tokenizer does."""
    from transformers import AutoTokenizer

    if (source / "tokenizer.json").is_file():
        return
    tok = build_tokenizer(source)
    slow = AutoTokenizer.from_pretrained(str(source))
    if getattr(slow, "normalize", False):
        raise ConversionError(
            "This SpeechT5 tokenizer normalizes numbers (normalize=True, EnglishNumberNormalizer), which onnxpipe's "
            "tokenizer.json cannot express; save the tokenizer with normalize=False and spell numbers out."
        )
    for text in CHECK_TEXTS:
        want, got = slow(text)["input_ids"], tok.encode(text).ids
        if want != got:
            raise ConversionError(f"The converted SpeechT5 tokenizer encodes {text!r} as {got}, SpeechT5Tokenizer as {want}.")
    tok.save(str(staging / "tokenizer.json"))


def validate(source: Path, vocoder: str, staging: Path, speaker: Optional[np.ndarray] = None) -> dict[str, Any]:
    """The graphs, run by the runtime's loop with every dropout unit kept, against SpeechT5ForTextToSpeech's
    generate_speech with its prenet dropout switched to keep everything too."""
    import torch
    from transformers import AutoTokenizer, SpeechT5ForTextToSpeech, SpeechT5HifiGan

    model = SpeechT5ForTextToSpeech.from_pretrained(str(source)).eval()
    model.speecht5.decoder.prenet._consistent_dropout = lambda x, p: x / (1 - p)
    voc = SpeechT5HifiGan.from_pretrained(vocoder).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    graphs = SpeechT5Graphs.from_paths({role: staging / f"{stem}.onnx" for role, stem in COMPONENTS.items()})
    dim = int(model.config.speaker_embedding_dim)
    speaker = speaker if speaker is not None else np.random.default_rng(0).standard_normal((1, dim)).astype(np.float32)

    def pair(text: str) -> tuple[np.ndarray, np.ndarray]:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            expected = model.generate_speech(ids, torch.from_numpy(speaker), vocoder=voc).numpy()
        return generate_waveform(graphs, ids.numpy(), speaker, keep_all=True), expected

    return waveform_figures(map(pair, ("hello world", "a", "The quick brown fox.")), TOLERANCE)
