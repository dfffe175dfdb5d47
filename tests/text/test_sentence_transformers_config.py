"""Reading a sentence-transformers folder's files: pooling configs old and new, module order, prompts, and the
problems that refuse the folder's sentence embedding (never its token vectors). Files written by hand here; parity
with sentence-transformers itself is in tests/tasks/test_sentence_transformers_folders.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxpipe.errors import InvalidOptionError, MissingModelFileError
from onnxpipe.model_folder import ModelFolder
from onnxpipe.text.pooling import pool, sentence_embedding
from onnxpipe.text.sentence_transformers_config import Dense, Normalize, read_sentence_transformers_config

TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}


def _folder(tmp_path, modules=None, pooling=None, **files):
    (tmp_path / "config.json").write_text("{}")
    if modules is not None:
        (tmp_path / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        (tmp_path / "1_Pooling").mkdir()
        (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    return read_sentence_transformers_config(ModelFolder.open(tmp_path))


def test_no_modules_is_mean_pooling(tmp_path):
    config = _folder(tmp_path)
    assert config.pooling_modes == ("mean",) and config.steps == () and not config.from_modules and config.problem is None


@pytest.mark.parametrize(("pooling", "modes"), [
    ({"pooling_mode_mean_tokens": True}, ("mean",)),
    ({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True}, ("cls", "mean")),  # legacy order
    ({"word_embedding_dimension": 4}, ("mean",)),
    ({"pooling_mode": "lasttoken"}, ("lasttoken",)),
    ({"pooling_mode": ["max", "cls"]}, ("max", "cls")),
])
def test_pooling_configs(tmp_path, pooling, modes):
    config = _folder(tmp_path, [TRANSFORMER, POOLING, NORMALIZE], pooling)
    assert config.pooling_modes == modes and config.problem is None
    assert config.steps == (Normalize(),)


def test_unknown_pooling_mode_is_a_problem(tmp_path):
    config = _folder(tmp_path, [TRANSFORMER, POOLING], {"pooling_mode": "median"})
    with pytest.raises(InvalidOptionError, match="median"):
        config.check_usable()


def test_module_order(tmp_path):
    dense = {"idx": 1, "name": "1", "path": "1_Dense", "type": "sentence_transformers.models.Dense"}
    config = _folder(tmp_path, [TRANSFORMER, dense, {**POOLING, "idx": 2}], {"pooling_mode": "mean"})
    with pytest.raises(InvalidOptionError, match="Dense"):
        config.check_usable()


def test_normalize_before_pooling_changes_nothing(tmp_path):
    config = _folder(tmp_path, [TRANSFORMER, {**NORMALIZE, "idx": 1}, {**POOLING, "idx": 2}], {"pooling_mode": "cls"})
    assert config.steps == () and config.problem is None


def test_missing_pooling_config_names_the_file(tmp_path):
    with pytest.raises(MissingModelFileError, match="1_Pooling/config.json"):
        _folder(tmp_path, [TRANSFORMER, POOLING])


def test_prompts_and_lengths(tmp_path):
    config = _folder(
        tmp_path, [TRANSFORMER, POOLING], {"pooling_mode": "mean", "include_prompt": False},
        **{"config_sentence_transformers.json": {"prompts": {"query": "q: "}, "default_prompt_name": "query"},
           "sentence_bert_config.json": {"max_seq_length": 128, "do_lower_case": True}},
    )
    assert config.max_seq_length == 128 and config.do_lower_case and not config.include_prompt
    assert config.resolve_prompt(None, None, use_default=True) == "q: "
    assert config.resolve_prompt(None, None, use_default=False) is None
    assert config.resolve_prompt("p: ", None, use_default=True) == "p: "
    assert config.resolve_prompt(None, "query", use_default=False) == "q: "


def test_default_prompt_name_must_be_a_prompt(tmp_path):
    config = _folder(tmp_path, **{"config_sentence_transformers.json": {"prompts": {"a": "a: "}, "default_prompt_name": "b"}})
    with pytest.raises(InvalidOptionError, match="default_prompt_name 'b'"):
        config.check_usable()


def test_pool_modes_by_hand():
    tokens = np.array([[1.0, 0.0], [3.0, 4.0], [5.0, -2.0]], np.float32)
    np.testing.assert_allclose(pool(tokens, ["cls"]), [1, 0])
    np.testing.assert_allclose(pool(tokens, ["lasttoken"]), [5, -2])
    np.testing.assert_allclose(pool(tokens, ["max"]), [5, 4])
    np.testing.assert_allclose(pool(tokens, ["mean"]), [3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(pool(tokens, ["mean_sqrt_len_tokens"]), np.array([9, 2]) / np.sqrt(3), rtol=1e-6)
    np.testing.assert_allclose(pool(tokens, ["weightedmean"]), np.array([1 + 6 + 15, 0 + 8 - 6]) / 6, rtol=1e-6)
    np.testing.assert_allclose(pool(tokens[1:], ["weightedmean"], first_position=1), np.array([6 + 15, 8 - 6]) / 5, rtol=1e-6)
    assert pool(tokens, ["cls", "max"]).shape == (4,)


def test_dense_then_normalize():
    from onnxpipe.text.sentence_transformers_config import SentenceTransformersConfig

    dense = Dense(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]], np.float32), np.array([0, 0, 1], np.float32), "Identity")
    config = SentenceTransformersConfig(pooling_modes=("cls",), steps=(dense, Normalize()), include_prompt=False)
    vector = sentence_embedding(np.array([[9.0, 9.0], [1.0, 2.0]], np.float32), config, prompt_tokens=1)
    np.testing.assert_allclose(vector, np.array([1, 3, 5]) / np.sqrt(35), rtol=1e-6)
