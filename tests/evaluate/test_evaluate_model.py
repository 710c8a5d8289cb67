"""Scoring a tiny random-init Qwen3-VL end to end, and refusing an adapter that does not fit the model."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.model.inference import GenerationSettings
from pipeline.stages.evaluate.answers_from_file import read_predictions
from pipeline.stages.evaluate.report import REPORT_FILES
from pipeline.stages.evaluate.scoring import MODEL_NAME
from pipeline.stages.evaluate.stage import EvaluateConfig, run


@pytest.fixture(scope="session")
def mismatched_adapter(tmp_path_factory) -> Path:
    """A LoRA adapter saved from a tiny Qwen3-VL with hidden size 32 (the `tiny_qwen3_vl` fixture has 64)."""
    from pipeline.contracts.run_config import LoraSettings
    from pipeline.model.modeling import apply_lora
    from pipeline.standins.tiny_model import TinyModelConfig, build_model

    model = build_model(TinyModelConfig(family="qwen3_vl", hidden_size=32, intermediate_size=64))
    peft_model = apply_lora(model, LoraSettings())
    out = tmp_path_factory.mktemp("adapters") / "hidden32"
    peft_model.save_pretrained(str(out))
    assert (out / "adapter_config.json").is_file()
    return out


def test_adapter_that_does_not_match_the_model_is_one_line(dataset_dir, tiny_qwen3_vl, mismatched_adapter, tmp_path):
    config = EvaluateConfig(
        dataset=dataset_dir, output_dir=tmp_path / "out", model=str(tiny_qwen3_vl), adapter=mismatched_adapter
    )
    with pytest.raises(PipelineError) as info:
        run(config)
    message = str(info.value)
    assert message.startswith(f"--adapter {mismatched_adapter} does not match --model {tiny_qwen3_vl}")
    assert "\n" not in message
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="session")
def model_report(dataset_dir, tiny_qwen3_vl, tmp_path_factory):
    """The tiny random-init Qwen3-VL scored on 2 test samples, answers saved."""
    out = tmp_path_factory.mktemp("eval_model") / "eval_report"
    config = EvaluateConfig(
        dataset=dataset_dir,
        output_dir=out,
        model=str(tiny_qwen3_vl),
        batch_size=2,
        max_samples=2,
        generation=GenerationSettings(max_new_tokens=24),
        save_predictions=True,
        device="cpu",
        dtype="float32",
    )
    return run(config), out


def test_tiny_model_end_to_end_writes_every_report_file(model_report, dataset_dir):
    from PIL import Image

    result, out = model_report
    assert result.n_samples == 2
    for name in (*REPORT_FILES, "predictions.jsonl"):
        assert (out / name).is_file(), name
    for name in REPORT_FILES:
        if name.endswith(".png"):
            with Image.open(out / name) as img:
                pixels = np.asarray(img.convert("RGB"))
            assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == str(result.info["model"])
    assert metrics["settings"]["generation"]["max_new_tokens"] == 24
    assert metrics["settings"]["video_settings"]["fps"] > 0
    # a random model cannot write 30 pairs in 24 tokens: every answer is a failure scored as the train mean
    assert metrics["parse_failures"] == 2
    s = result.scores["all"]
    assert s[MODEL_NAME].velocity_mae == s["train_mean"].velocity_mae


def test_saved_predictions_rescore_identically(model_report, dataset_dir, tmp_path):
    result, out = model_report
    saved = read_predictions(out / "predictions.jsonl")
    assert list(saved) == result.ids
    assert list(saved.values()) == result.texts
    again = run(
        EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / "again", predictions=out / "predictions.jsonl")
    )
    assert again.info["dataset_fingerprint"] == result.info["dataset_fingerprint"]
    assert again.scores["all"][MODEL_NAME].to_dict() == result.scores["all"][MODEL_NAME].to_dict()


def test_device_resolution():
    import torch

    from pipeline.stages.evaluate.answers_from_model import resolve_device

    assert resolve_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(PipelineError, match="--device cuda:0: no CUDA GPU"):
            resolve_device("cuda:0")
    with pytest.raises(PipelineError, match="--device"):
        EvaluateConfig(dataset=".", output_dir=".", model="m", device="tpu")
