"""Scoring a tiny random-init Qwen3-VL end to end, and refusing an adapter that does not fit the model."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.evaluate import MODEL_NAME, EvaluateConfig, read_predictions, run
from pipeline.report import REPORT_FILES


@pytest.fixture(scope="session")
def mismatched_adapter(tmp_path_factory, qwen_tokenizer) -> Path:
    """A LoRA adapter saved from a tiny Qwen3-VL with hidden size 32 (the `tiny_qwen3_vl` fixture has 64)."""
    from pipeline.train.modeling import LoraSettings, apply_lora
    from pipeline.train.tiny_model import TinyModelConfig, build_model

    model = build_model(TinyModelConfig(family="qwen3_vl", hidden_size=32, intermediate_size=64))
    peft_model = apply_lora(model, LoraSettings())
    out = tmp_path_factory.mktemp("adapters") / "hidden32"
    peft_model.save_pretrained(str(out))
    assert (out / "adapter_config.json").is_file()
    return out


def test_adapter_that_does_not_match_the_model_is_one_line(dataset_dir, tiny_qwen3_vl, mismatched_adapter, tmp_path):
    config = EvaluateConfig(
        dataset_dir=dataset_dir, output_dir=tmp_path / "out", model=str(tiny_qwen3_vl), adapter=mismatched_adapter
    )
    with pytest.raises(PipelineError) as info:
        run(config)
    message = str(info.value)
    assert message.startswith(f"--adapter {mismatched_adapter} does not match --model {tiny_qwen3_vl}")
    assert "\n" not in message
    assert not (tmp_path / "out").exists()
