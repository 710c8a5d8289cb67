"""Bad input to `pipeline train`: one-line errors (exit 2) or skip-and-count, never a silent wrong label."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import datasets
import pytest

from pipeline.contracts.dataset_reader import META_FILE
from pipeline.core.errors import PipelineError
from pipeline.stages.train.config import TrainConfig
from pipeline.stages.train.run_dir import check_output_dir
from pipeline.stages.train.trainer import SUMMARY_FILE, finish, load_rows, prepare
from tests.fixtures.model_fixtures import write_test_dataset


def config_for(tmp_path, **values) -> TrainConfig:
    base = dict(dataset=str(tmp_path / "none"), output_dir=str(tmp_path / "out"), report_to="none", max_steps=1)
    return TrainConfig.from_sources(overrides=base | values)


def test_dataset_without_messages_column_is_refused(tmp_path):
    root = tmp_path / "ds"
    datasets.Dataset.from_list([{"id": "a", "video": "x.mp4"}]).save_to_disk(str(root / "train"))
    (root / META_FILE).write_text(json.dumps({"video_root": str(tmp_path)}))
    with pytest.raises(PipelineError, match=r"lacks column\(s\) messages") as err:
        load_rows(root, "train")
    assert "\n" not in str(err.value)


def test_missing_dataset_is_a_pipeline_error(tmp_path):
    with pytest.raises(PipelineError):
        load_rows(tmp_path / "nowhere", "train")


def test_missing_local_model_dir_is_one_line(tmp_path):
    from pipeline.model.modeling import load_model_and_processor

    with pytest.raises(PipelineError, match="no such model directory"):
        load_model_and_processor(tmp_path / "no_model")


def write_checkpoint(path, step: int, complete: bool = True) -> None:
    """A checkpoint directory as the Trainer leaves it: weights first, trainer_state.json last (if it got there)."""
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def test_output_dir_holding_another_run_is_refused(tmp_path):
    out = tmp_path / "out"
    write_checkpoint(out / "checkpoint-5", 5)
    (out / "train_config.json").write_text("{}")
    with pytest.raises(PipelineError, match="holds another training run"):
        check_output_dir(config_for(tmp_path))
    assert check_output_dir(config_for(tmp_path, resume_from_checkpoint="last")) == str(out / "checkpoint-5")
    assert check_output_dir(config_for(tmp_path, overwrite=True)) is None
    assert not (out / "checkpoint-5").exists() and not (out / "train_config.json").exists()
    with pytest.raises(PipelineError, match="no complete checkpoint"):
        check_output_dir(config_for(tmp_path, resume_from_checkpoint="last"))


def test_resume_last_passes_over_an_incomplete_newest_checkpoint(tmp_path, caplog):
    out = tmp_path / "out"
    write_checkpoint(out / "checkpoint-5", 5)
    write_checkpoint(out / "checkpoint-10", 10)
    write_checkpoint(out / "checkpoint-12", 12, complete=False)  # a save interrupted by a crash
    (out / "checkpoint-15").mkdir()  # interrupted before anything was written
    with caplog.at_level("INFO", logger="pipeline.stages.train"):
        assert check_output_dir(config_for(tmp_path, resume_from_checkpoint="last")) == str(out / "checkpoint-10")
    assert f"{out / 'checkpoint-15'} is incomplete (no readable trainer_state.json)" in caplog.text
    assert f"{out / 'checkpoint-12'} is incomplete" in caplog.text
    assert f"resuming from {out / 'checkpoint-10'} (step 10)" in caplog.text
    with pytest.raises(PipelineError, match=r"checkpoint-12: incomplete checkpoint \(no readable trainer_state"):
        check_output_dir(config_for(tmp_path, resume_from_checkpoint=str(out / "checkpoint-12")))


def test_train_cli_errors_are_one_line(tmp_path):
    from tests.cli_contract import assert_one_line_error, run_pipeline

    bogus = run_pipeline("train", "--lr-scheduler-type", "bogus", "--output-dir", tmp_path / "out")
    assert_one_line_error(bogus, "--lr-scheduler-type 'bogus'", "valid: linear, cosine")
    write_checkpoint(tmp_path / "out" / "checkpoint-3", 3, complete=False)
    only_incomplete = run_pipeline("train", "--resume-from-checkpoint", "last", "--output-dir", tmp_path / "out")
    assert_one_line_error(only_incomplete, "--resume-from-checkpoint last", "no complete checkpoint", "out")


def test_config_file_with_cli_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("learning-rate: 0.002\nlora_r: 4\nmodel: some/model\n")
    config = TrainConfig.from_sources(path, {"lora_r": 2, "seed": None})
    assert (config.learning_rate, config.lora.r, config.model, config.seed) == (0.002, 2, "some/model", 42)
    path.write_text("no_such_flag: 1\n")
    with pytest.raises(PipelineError, match="no_such_flag"):
        TrainConfig.from_sources(path)
    with pytest.raises(PipelineError, match="--bf16 and --fp16"):
        TrainConfig(bf16=True, fp16=True)
    with pytest.raises(PipelineError, match="--first-line-weight: must be > 0"):
        TrainConfig(first_line_weight=0)


def test_unloadable_model_offline_is_one_line_exit_2(train_dataset_dir, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "train",
        "--model",
        "no-such-org/no-such-model-xyz",
        "--dataset",
        str(train_dataset_dir),
        "--output-dir",
        str(tmp_path / "out"),
        "--report-to",
        "none",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and error_lines[0].startswith("error: --model no-such-org/no-such-model-xyz")


@pytest.mark.slow
def test_missing_video_rows_are_skipped_and_counted(tiny_qwen3_vl, tmp_path):
    dataset_dir = write_test_dataset(tmp_path / "data", n_train=3, n_test=1, missing_video_rows=1)
    config = TrainConfig(
        model=str(tiny_qwen3_vl),
        dataset=str(dataset_dir),
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        report_to="none",
        save_steps=100,
        eval=True,
    )
    prepared = prepare(config)
    assert prepared.train_samples == 2
    assert [s["id"] for s in prepared.skipped] == ["00000000-0000-0000-0000-000000000002_00"]
    assert "not found" in prepared.skipped[0]["reason"]
    result = finish(prepared, prepared.trainer.train(), 0.0)
    summary = json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert summary["skipped_samples"] == result.skipped_samples and len(result.skipped_samples) == 1
    assert result.eval_loss is not None and 0 < result.eval_loss < 30  # --eval: loss on the test split
