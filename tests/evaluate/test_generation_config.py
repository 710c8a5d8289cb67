"""Answers do not depend on the sampling and penalty settings a checkpoint ships in its generation_config.json."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.model.inference import GenerationSettings
from pipeline.stages.evaluate.stage import EvaluateConfig, run

# What a published checkpoint may ask for (Qwen2.5-VL's own penalty is 1.05; 1.3 makes the effect certain here).
SHIPPED = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.3}
NEW_TOKENS = 16


@pytest.fixture(scope="module")
def digit_model(tiny_qwen3_vl, tmp_path_factory):
    """The tiny Qwen3-VL with the (tied) embeddings of the answer characters scaled up, so that, like a real model,
    it writes digits, commas and line breaks, which repeat within a few tokens."""
    import torch

    from pipeline.model.modeling import load_model_and_processor

    model, processor = load_model_and_processor(tiny_qwen3_vl)
    ids = processor.tokenizer.convert_tokens_to_ids(list("0123456789,.-"))
    with torch.no_grad():
        model.get_input_embeddings().weight[ids] *= 2.0
    out = tmp_path_factory.mktemp("digits") / "model"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def penalised_model(digit_model, tmp_path_factory):
    """A copy of `digit_model` whose saved generation config samples and penalises repetitions."""
    out = tmp_path_factory.mktemp("penalised") / "model"
    shutil.copytree(digit_model, out)
    path = out / "generation_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | SHIPPED), encoding="utf-8")
    return out


def test_shipped_sampling_and_penalty_settings_do_not_change_the_answers(
    digit_model, penalised_model, dataset_dir, tmp_path
):
    from transformers import GenerationConfig

    from pipeline.model.inference import generate_answers
    from pipeline.model.modeling import load_model_and_processor
    from pipeline.stages.train.trainer import load_rows

    config = EvaluateConfig(
        dataset=dataset_dir,
        output_dir=tmp_path / "eval",
        model=str(penalised_model),
        batch_size=2,
        max_samples=2,
        generation=GenerationSettings(max_new_tokens=NEW_TOKENS),
        device="cpu",
        dtype="float32",
    )
    shipped = run(config)
    rows = load_rows(dataset_dir, "test").select(range(2))
    model, processor = load_model_and_processor(digit_model)
    plain = generate_answers(model, processor, rows, max_new_tokens=NEW_TOKENS, batch_size=2)
    assert shipped.texts == plain and all(plain)
    # The record in metrics.json: greedy, no penalty, Qwen's end-of-turn id as eos, the pad id.
    generation = json.loads((tmp_path / "eval" / "metrics.json").read_text())["generation"]
    assert generation["do_sample"] is False and generation["num_beams"] == 1
    assert generation["repetition_penalty"] == 1.0 and generation["max_new_tokens"] == NEW_TOKENS
    assert 151645 in generation["eos_token_id"] and generation["pad_token_id"] == 151643

    # The settings do matter when inherited: greedy decoding that leaves the penalty to the checkpoint's config
    # (what generation did before) writes other answers.
    model, processor = load_model_and_processor(penalised_model)
    assert model.generation_config.repetition_penalty == 1.3
    inheriting = GenerationConfig(max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=151645, pad_token_id=151643)
    inherited = generate_answers(model, processor, rows, batch_size=2, generation_config=inheriting)
    assert inherited != plain
