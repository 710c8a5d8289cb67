"""Train settings checked at the edge: YAML numbers written as text (`1e-4`) are numbers; a value of the wrong kind,
an unreadable `--config`, or a non-finite number is one line naming the key or file (exit 2) before any output
folder is made."""

from __future__ import annotations

import pytest

from pipeline.core.errors import PipelineError
from pipeline.stages.train.config import TrainConfig
from tests.cli_contract import assert_one_line_error, run_pipeline


def test_yaml_numbers_written_as_text_are_read_as_numbers(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("learning_rate: 1e-4\nwarmup_ratio: 5E-2\nlora:\n  dropout: 1e-1\n  r: '4'\n")
    config = TrainConfig.from_sources(path)
    assert (config.learning_rate, config.warmup_ratio, config.lora.dropout, config.lora.r) == (1e-4, 0.05, 0.1, 4)
    assert isinstance(config.learning_rate, float) and isinstance(config.lora.r, int)


BAD_FILES = {
    "text for a rate": ("learning_rate: fast\n", "learning_rate: expected a number, got 'fast'"),
    "a list for a count": ("max_steps: [1, 2]\n", "max_steps: expected a whole number, got [1, 2]"),
    "not UTF-8": (b"model: \xff\xfe\n", "not UTF-8 text"),
    "a directory": (None, "is a directory"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_config_file_is_one_line_naming_the_file_and_key(case, tmp_path):
    content, expected = BAD_FILES[case]
    path = tmp_path / "train.yaml"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    out = tmp_path / "out"
    result = run_pipeline("train", "--config", path, "--output-dir", out, "--report-to", "none")
    assert_one_line_error(result, f"--config {path}", expected)
    assert not out.exists()


@pytest.mark.parametrize(
    ("yaml_text", "flags", "expected"),
    [
        ("", ("--learning-rate", "inf"), "--learning-rate: must be a finite number, got inf"),
        ("learning_rate: .nan\n", (), "--learning-rate: must be a finite number, got nan"),
    ],
)
def test_non_finite_or_out_of_range_numbers_are_refused_before_any_output(yaml_text, flags, expected, tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml_text)
    out = tmp_path / "out"
    result = run_pipeline("train", "--config", path, *flags, "--output-dir", out, "--report-to", "none")
    assert_one_line_error(result, expected)
    assert not out.exists()


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("bf16: 'yes please'\n", "bf16: expected true or false, got 'yes please'"),
        ("lora:\n  dropout: lots\n", "lora.dropout: expected a number, got 'lots'"),
        ("video:\n  max_frames: 2.5\n", "video.max_frames: expected a whole number, got 2.5"),
        ("max_grad_norm: -.inf\n", "--max-grad-norm: must be a finite number, got -inf"),
        ("weight_decay: -0.1\n", "--weight-decay and --max-grad-norm: must be >= 0"),
        ("seed: -1\n", "--seed: must be in 0..2**32-1, got -1"),
    ],
)
def test_every_key_is_checked_by_kind_and_range(yaml_text, expected, tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(yaml_text)
    with pytest.raises(PipelineError) as info:
        TrainConfig.from_sources(path)
    assert expected in str(info.value) and "\n" not in str(info.value)
