"""A small version of benchmarks/learning_bench.py: a tiny random-init Qwen3-VL trained on the rendered-road
segments really learns (its loss falls far below the start) and what it learned carries over to held-out clips
(its answer loss on the test split falls well below the untrained model's)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from pipeline.dataset import DatasetConfig
from pipeline.dataset import run as build_dataset
from pipeline.demo import PROFILES, tiny_model_config, tiny_train_config
from pipeline.train import trainer
from pipeline.train.collator import SampleEncoder, pad_batch
from pipeline.train.loss import answer_only_loss
from pipeline.train.tiny_model import make_tiny_model


def held_out_answer_loss(model_dir, rows) -> float:
    """Mean answer-token cross-entropy (nats) of the model in `model_dir` on `rows`, teacher-forced."""
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    encoder = SampleEncoder(processor)
    batch = pad_batch([encoder.encode(row["messages"]) for row in rows], processor.tokenizer.pad_token_id)
    with torch.no_grad():
        loss, _ = answer_only_loss(model, batch)
    return float(loss)


@pytest.mark.slow
def test_tiny_model_learns_and_generalises(segments_dir, qwen_tokenizer, tmp_path):
    dataset_dir = tmp_path / "dataset"
    build_dataset(
        DatasetConfig(
            segments_path=segments_dir / "metadata" / "segments.json", output_dir=dataset_dir, test_ratio=0.34
        )
    )
    profile = replace(PROFILES["quick"], layers=2, max_steps=30, batch_size=4, learning_rate=3e-3)
    model_dir = make_tiny_model(tmp_path / "tiny", tiny_model_config(profile, "qwen3_vl", 0), tokenizer=qwen_tokenizer)
    config = replace(
        tiny_train_config(profile, model_dir, dataset_dir, tmp_path / "trained", 0), logging_steps=1, save_steps=1000
    )
    result = trainer.run(config)

    assert len(result.losses) == profile.max_steps
    assert all(loss == loss for loss in result.losses)  # no NaN
    assert max(result.losses[-3:]) < 0.5 * result.losses[0]

    test_rows = trainer.load_rows(dataset_dir, "test").select(range(8))
    before = held_out_answer_loss(model_dir, test_rows)
    after = held_out_answer_loss(tmp_path / "trained", test_rows)
    assert after < 0.6 * before, (before, after)
