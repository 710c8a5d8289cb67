"""A small version of benchmarks/learning_bench.py: a tiny random-init Qwen3-VL (5,000-token Qwen vocabulary)
trained on the rendered-road segments really learns (its loss falls far below the start), writes answers in the
trained format for held-out clips, and those answers' velocities beat the zero-motion baseline."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from pipeline.demo.profiles import PROFILES, tiny_dataset_config, tiny_model_config, tiny_train_config
from pipeline.stages.dataset.stage import run as build_dataset
from pipeline.stages.evaluate import stage as evaluate
from pipeline.stages.train import trainer
from pipeline.standins.tiny_model import make_tiny_model

LINE = re.compile(r"(-?\d+\.\d\d),(-?\d+\.\d\d)")


def read_velocities(text: str) -> np.ndarray | None:
    """The 30 velocities of an answer (m/s), read independently of contracts.answer; None unless exactly 30 lines."""
    lines = text.strip().split("\n")
    matches = [LINE.fullmatch(line.strip()) for line in lines]
    if len(lines) != 30 or not all(matches):
        return None
    return np.array([float(m.group(1)) for m in matches])


@pytest.mark.slow
def test_tiny_model_learns_and_beats_zero_motion_on_held_out_clips(segments_dir, tmp_path):
    dataset_dir = tmp_path / "dataset"
    profile = replace(PROFILES["default"], max_steps=300, batch_size=8, test_ratio=0.34)
    # Split seed 1 holds out the cruise and s-curve clips, whose speeds and curvatures the four train clips span.
    build_dataset(tiny_dataset_config(profile, segments_dir, dataset_dir, seed=1, history=False))
    model_dir = make_tiny_model(tmp_path / "tiny", tiny_model_config(profile, "qwen3_vl", 0))
    config = replace(
        tiny_train_config(profile, model_dir, dataset_dir, tmp_path / "trained", 0), logging_steps=10, save_steps=1000
    )
    result = trainer.run(config)

    assert len(result.losses) == profile.max_steps // 10
    assert all(np.isfinite(result.losses))
    assert max(result.losses[-3:]) < 0.1 * result.losses[0], result.losses

    evaluation = evaluate.run(
        evaluate.EvaluateConfig(
            dataset=dataset_dir, output_dir=tmp_path / "eval", model=str(tmp_path / "trained"), batch_size=8
        )
    )
    read = [
        (read_velocities(text), truth) for text, truth in zip(evaluation.texts, evaluation.true_velocity, strict=True)
    ]
    answered = [(pred, truth) for pred, truth in read if pred is not None]
    assert len(answered) >= 0.5 * len(read), evaluation.texts[:3]
    model_mae = np.mean([np.abs(pred - truth).mean() for pred, truth in answered])
    zero_motion_mae = np.mean([np.abs(truth).mean() for _, truth in answered])
    print(f"{len(answered)}/{len(read)} read; velocity MAE {model_mae:.2f} vs zero motion {zero_motion_mae:.2f} m/s")
    assert model_mae < zero_motion_mae, (model_mae, zero_motion_mae)
