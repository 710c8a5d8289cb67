"""Models are checked before use: `merge-lora`, `evaluate --adapter` and `train --resume-from-checkpoint` refuse an
adapter or checkpoint made for another base in one line (exit 2) before writing anything; `train` and `merge-lora`
refuse an output dir they cannot write; the files a merge writes get the umask's modes (not safetensors' 0600)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli_contract import assert_one_line_error, run_pipeline


def save_adapter(model, out: Path) -> Path:
    from pipeline.contracts.run_config import LoraSettings
    from pipeline.model.modeling import apply_lora

    apply_lora(model, LoraSettings()).save_pretrained(str(out))
    assert (out / "adapter_config.json").is_file()
    return out


@pytest.fixture(scope="module")
def qwen3_vl_adapter(tiny_qwen3_vl, tmp_path_factory) -> Path:
    """An untrained LoRA adapter of the tiny Qwen3-VL (its adapter_config.json records that base's dir)."""
    from pipeline.model.modeling import load_model_and_processor

    model, _ = load_model_and_processor(tiny_qwen3_vl, for_training=True)
    return save_adapter(model, tmp_path_factory.mktemp("adapters") / "qwen3_vl")


@pytest.fixture(scope="module")
def hidden32_adapter(tmp_path_factory) -> Path:
    """A LoRA adapter of a Qwen3-VL with hidden size 32 (the tiny models have 64), recording no base."""
    from pipeline.standins.tiny_model import TinyModelConfig, build_model

    model = build_model(TinyModelConfig(family="qwen3_vl", hidden_size=32, intermediate_size=64))
    return save_adapter(model, tmp_path_factory.mktemp("adapters") / "hidden32")


@pytest.fixture
def mismatch(request, tiny_qwen3_vl, tiny_qwen2_5_vl, qwen3_vl_adapter, hidden32_adapter):
    """(base, adapter, what the error line says) for a Qwen3-VL adapter on Qwen2.5-VL, or a hidden-size mismatch."""
    if request.param == "family":
        return tiny_qwen2_5_vl, qwen3_vl_adapter, "family qwen3_vl vs qwen2_5_vl"
    return tiny_qwen3_vl, hidden32_adapter, "adapter shape [8, 64] does not fit 128 -> 64"


@pytest.mark.parametrize("mismatch", ["family", "hidden_size"], indirect=True)
def test_merge_lora_refuses_an_adapter_made_for_another_base(mismatch, tmp_path):
    base, adapter, what = mismatch
    out = tmp_path / "merged"
    result = run_pipeline("merge-lora", "--base", base, "--adapter", adapter, "--output-dir", out)
    assert_one_line_error(result, f"--adapter {adapter} does not match --base {base}", what)
    assert not out.exists()


@pytest.mark.parametrize("mismatch", ["family", "hidden_size"], indirect=True)
def test_evaluate_refuses_an_adapter_made_for_another_base(mismatch, train_dataset_dir, tmp_path):
    base, adapter, what = mismatch
    out = tmp_path / "eval"
    result = run_pipeline(
        "evaluate", "--dataset", train_dataset_dir, "--model", base, "--adapter", adapter, "--output-dir", out
    )
    assert_one_line_error(result, f"--adapter {adapter} does not match --model {base}", what)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["lora", "full"])
def test_resume_from_another_models_checkpoint_is_refused_and_leaves_no_output_dir(
    kind, tiny_qwen3_vl, tiny_qwen2_5_vl, qwen3_vl_adapter, train_dataset_dir, tmp_path
):
    checkpoint = tmp_path / "other_run" / "checkpoint-2"
    shutil.copytree(qwen3_vl_adapter if kind == "lora" else tiny_qwen3_vl, checkpoint)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    out = tmp_path / "out"
    args = ("--model", tiny_qwen2_5_vl, "--dataset", train_dataset_dir, "--report-to", "none")
    result = run_pipeline("train", *args, "--resume-from-checkpoint", checkpoint, "--output-dir", out)
    line = assert_one_line_error(result, f"--resume-from-checkpoint {checkpoint} does not match --model")
    assert "family qwen3_vl vs qwen2_5_vl" in line
    assert not out.exists()


def test_train_into_a_read_only_output_dir_is_one_line(tiny_qwen3_vl, train_dataset_dir, read_only_dir):
    args = ("--model", tiny_qwen3_vl, "--dataset", train_dataset_dir, "--report-to", "none")
    result = run_pipeline("train", *args, "--output-dir", read_only_dir)
    assert_one_line_error(result, f"--output-dir {read_only_dir}", "cannot write there")


def test_merge_lora_into_a_read_only_output_dir_is_one_line(tiny_qwen3_vl, qwen3_vl_adapter, read_only_dir):
    args = ("--base", tiny_qwen3_vl, "--adapter", qwen3_vl_adapter)
    result = run_pipeline("merge-lora", *args, "--output-dir", read_only_dir)
    assert_one_line_error(result, f"--output-dir {read_only_dir}", "cannot write there")


def test_merged_files_follow_the_umask(tiny_qwen3_vl, qwen3_vl_adapter, tmp_path):
    from pipeline.stages.train.merge import MergeConfig, run

    old = os.umask(0o027)
    try:
        out = run(MergeConfig(base=str(tiny_qwen3_vl), adapter=str(qwen3_vl_adapter), output_dir=str(tmp_path / "m")))
    finally:
        os.umask(old)
    for path in [out, *out.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o750 if path.is_dir() else 0o640), path  # safetensors' own: 0600
