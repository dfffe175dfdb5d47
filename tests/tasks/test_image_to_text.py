"""image-to-text at parity with transformers' ImageToTextPipeline on two tiny VisionEncoderDecoder checkpoints
(ViT + GPT-2, and TrOCR-style: DeiT wider than its TrOCR decoder, so enc_to_dec_proj runs): greedy and beam
search, the default 256 new tokens, batches and input forms, sampling, streaming, the int8 variant, the export's
manifest, and clear errors for prompt and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from support.image_to_text_checkpoints import ARCHS, build_image_to_text_checkpoint, pictures

from onnxpipe import pipeline
from onnxpipe.errors import InvalidInputError, InvalidOptionError
from onnxpipe.registry import task_from_architectures

SHORT = {"max_new_tokens": 12}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """arch -> (checkpoint, export), each built and exported once: fp32 + int8 for ViT + GPT-2, fp32 for TrOCR."""
    from onnxpipe_export import export

    root = tmp_path_factory.mktemp("image-to-text")
    folders = {}
    for arch in ARCHS:
        checkpoint = build_image_to_text_checkpoint(arch, root / "ckpt" / arch)
        with warnings.catch_warnings():  # int8 on a hidden-size-32 decoder drifts from torch: reported, expected
            warnings.simplefilter("ignore")
            dtypes = ["fp32", "int8"] if arch == "vit-gpt2" else ["fp32"]
            export(str(checkpoint), task="image-to-text", output=str(root / "onnx" / arch), dtype=dtypes, quiet=True)
        folders[arch] = (checkpoint, root / "onnx" / arch)
    return folders


@pytest.fixture(scope="module")
def pair(exported):
    """arch -> (onnxpipe fp32 pipeline, transformers pipeline) on the same checkpoint, built once."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    built = {}

    def get(arch):
        if arch not in built:
            checkpoint, folder = exported[arch]
            built[arch] = (
                pipeline("image-to-text", model=str(folder), dtype="fp32"),
                transformers.pipeline("image-to-text", model=str(checkpoint), device="cpu"),
            )
        return built[arch]

    return get


@pytest.fixture(scope="module")
def images():
    return pictures(4)


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_equals_transformers_and_depends_on_the_image(pair, images, arch):
    ours, ref = pair(arch)
    results = ours(images, **SHORT)
    assert results == ref(images, **SHORT)
    captions = [r[0]["generated_text"] for r in results]
    assert len(set(captions)) == len(images)  # random weights decide: each picture its own caption
    ids = ours.encoder.tokenizer.encode(captions[0], add_special_tokens=False).ids
    assert len(set(ids)) > 2  # not one repeated token


@pytest.mark.parametrize("arch", ARCHS)
def test_beam_search_equals_transformers(pair, images, arch):
    ours, ref = pair(arch)
    options = {"max_new_tokens": 10, "generate_kwargs": {"num_beams": 3, "num_return_sequences": 2}}
    results = ours(images[:3], **options)
    assert results == ref(images[:3], **options)
    assert all(len(r) == 2 for r in results)


def test_default_length_and_single_image(pair, images):
    """No options: transformers' 256 new tokens (the tiny decoder has 300 positions); one image gives one list."""
    ours, ref = pair("vit-gpt2")
    result = ours(images[0])
    assert result == ref(images[0])
    assert isinstance(result, list) and set(result[0]) == {"generated_text"}


def test_input_forms_and_batches(pair, images, tmp_path):
    ours, _ = pair("trocr")
    expected = ours(images, **SHORT)
    assert ours(images, batch_size=3, **SHORT) == expected
    path = tmp_path / "picture.png"
    images[1].save(path)
    assert ours(str(path), **SHORT) == expected[1]
    assert ours(images=images[1], **SHORT) == expected[1]
    assert ours(np.asarray(images[2]), **SHORT) == expected[2]
    assert ours(inputs=[images[3]], timeout=5.0, **SHORT) == [expected[3]]


def test_sampling_is_seeded(pair, images):
    ours, _ = pair("vit-gpt2")
    options = {"max_new_tokens": 12, "generate_kwargs": {"do_sample": True, "top_k": 20, "seed": 3}}
    first = ours(images[0], **options)
    assert ours(images[0], **options) == first
    assert ours(images[0], max_new_tokens=12, do_sample=True, top_k=20, seed=3) == first  # directly too
    two = ours(images[:2], max_new_tokens=6, do_sample=True, num_return_sequences=2, seed=0)
    assert [len(r) for r in two] == [2, 2]
    with pytest.raises(InvalidOptionError, match="num_return_sequences"):
        ours(images[0], max_new_tokens=6, num_return_sequences=2)  # greedy gives one, as transformers says


@pytest.mark.parametrize("arch", ARCHS)
def test_streaming_gives_the_caption(pair, images, arch):
    from onnxpipe.generation.streaming import TextIteratorStreamer

    ours, _ = pair(arch)
    caption = ours(images[2], **SHORT)[0]["generated_text"]
    assert "".join(ours.stream(images[2], **SHORT)) == caption
    streamer = TextIteratorStreamer(lambda ids: ours.decode(ids), skip_prompt=True)
    assert ours(images[2], max_new_tokens=12, generate_kwargs={"streamer": streamer}) == [{"generated_text": caption}]
    assert "".join(streamer) == caption


def test_int8_variant_and_manifest(exported, images):
    _, folder = exported["vit-gpt2"]
    manifest = json.loads((folder / "onnxpipe.json").read_text())
    assert manifest["task"] == "image-to-text" and manifest["components"]["encoder"] == "encoder_model"
    fp32 = manifest["files"]["decoder_model_merged.onnx"]["validation"]
    assert fp32["passed"] and fp32["greedy_agreement"] == 1.0
    assert "decoder_model_merged_quantized.onnx" in manifest["files"]
    quantized = pipeline("image-to-text", model=str(folder), dtype="int8")
    assert quantized.dtype == "int8"
    results = quantized(images, **SHORT)
    assert [len(r) for r in results] == [1] * len(images)
    assert task_from_architectures(["VisionEncoderDecoderModel"]) == "image-to-text"
    assert pipeline(model=str(folder)).task == "image-to-text"


def test_prompt_is_refused_as_transformers_does(pair, images):
    ours, ref = pair("vit-gpt2")
    with pytest.raises(ValueError, match="does not support conditional text generation"):
        ref(images[0], prompt="a photo of")
    with pytest.raises(InvalidOptionError, match="does not support conditional text generation"):
        ours(images[0], prompt="a photo of")
    with pytest.raises(InvalidOptionError, match="single string"):
        ours(images[0], prompt=["a", "b"])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda p: p(), InvalidInputError, "without an image"),
        (lambda p: p(None), InvalidInputError, "without an image"),
        (lambda p: p([None]), InvalidInputError, "is None"),
        (lambda p: p(42), InvalidInputError, "An image must be"),
        (lambda p: p([]), InvalidInputError, "empty list"),
        (lambda p: p("no/such/picture.png"), InvalidInputError, "picture.png"),
        (lambda p: p(pictures(1)[0], images=pictures(1)[0]), InvalidInputError, "once"),
        (lambda p: p(pictures(1)[0], threshold=0.5), InvalidOptionError, "threshold"),
        (lambda p: p(pictures(1)[0], max_new_tokens=4, generate_kwargs={"max_new_tokens": 5}), InvalidOptionError, "both"),
        (lambda p: p(pictures(1)[0], generate_kwargs=[("num_beams", 2)]), InvalidOptionError, "dict"),
        (lambda p: p(pictures(1)[0], generate_kwargs={"timeout": 3}), InvalidOptionError, "pipeline options"),
        (lambda p: p(pictures(1)[0], generate_kwargs={"output_attentions": True}), InvalidOptionError, "output_attentions"),
        (lambda p: p(pictures(1)[0], timeout=-1), InvalidOptionError, "timeout"),
        (lambda p: p(pictures(1)[0], max_new_tokens=400), InvalidInputError, "300"),
        (lambda p: p(pictures(1)[0], num_beams=2, streamer=object()), InvalidOptionError, "streamer"),
    ],
)
def test_bad_input_and_options(pair, call, error, match):
    ours, _ = pair("vit-gpt2")
    with pytest.raises(error, match=match):
        call(ours)


def test_export_refuses_other_image_to_text_models(tmp_path):
    from onnxpipe_export import export
    from onnxpipe_export.errors import UnsupportedTaskError

    source = tmp_path / "git"  # Pix2Struct is exported since (test_image_to_text_pix2struct.py)
    source.mkdir()
    (source / "config.json").write_text(json.dumps({"model_type": "git", "architectures": ["GitForCausalLM"]}))
    with pytest.raises(UnsupportedTaskError, match="git"):
        export(str(source), task="image-to-text", output=str(tmp_path / "out"), quiet=True)
