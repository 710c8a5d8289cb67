"""`TrainConfig`: every option of `pipeline train`, from defaults < a YAML config file < command-line overrides; and
`MergeConfig`, the settings of `pipeline merge-lora`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.contracts.run_config import CONFIG_FILE, DEFAULT_MODEL, LoraSettings, VideoSettings
from pipeline.core.errors import PipelineError, first_line
from pipeline.core.options import build, group, merge, nest, overwrite_setting, setting, to_json
from pipeline.core.typed import typed_values

DEFAULT_DATASET = "qwen_video_dataset"
REPORT_TO = ("tensorboard", "none", "wandb", "all")
# Float settings of `TrainConfig`, refused unless finite (`inf` would train to NaN weights).
FLOAT_SETTINGS = ("learning_rate", "num_train_epochs", "warmup_ratio", "weight_decay", "max_grad_norm")
FLOAT_SETTINGS += ("first_line_weight",)


@dataclass(frozen=True)
class TrainConfig:
    """A training run: the options of `pipeline train` and the keys of its `--config` YAML (flag names, `-` or
    `_`, or the nested groups `lora:` and `video:`)."""

    model: str = setting(DEFAULT_MODEL, help="Hub id or local dir of the base model (AutoModelForImageTextToText).")
    dataset: str = setting(DEFAULT_DATASET, help="Dir from build-dataset (holds train/ and test/).")
    output_dir: str = setting("outputs/qwen_vl_motion", help="Run directory: checkpoints, adapter/weights, processor.")
    video_root: str | None = setting(None, help="Moved segments: override of the dataset's recorded video root.")
    # what to train
    tune_mm_llm: bool = setting(
        True,
        help="Train the language model (LoRA adapters, or full weights without LoRA).",
        flags=("--tune-mm-llm/--no-tune-mm-llm", "--tune_mm_llm/--no_tune_mm_llm"),
    )
    tune_mm_vision: bool = setting(
        False,
        help="Train the vision tower.",
        flags=("--tune-mm-vision/--no-tune-mm-vision", "--tune_mm_vision/--no_tune_mm_vision"),
    )
    tune_mm_mlp: bool = setting(
        False,
        help="Train the vision→language projector (merger) in full.",
        flags=("--tune-mm-mlp/--no-tune-mm-mlp", "--tune_mm_mlp/--no_tune_mm_mlp"),
    )
    lora: LoraSettings = group(LoraSettings)
    # optimisation
    learning_rate: float = setting(1e-4, help="Peak learning rate (AdamW, schedule after warmup).")
    num_train_epochs: float = setting(1.0, help="Epochs over the train split (ignored when --max-steps > 0).")
    max_steps: int = setting(-1, help="Stop after this many optimizer steps (-1: run --num-train-epochs).")
    per_device_train_batch_size: int = setting(1, help="Rows per device per micro-batch.")
    gradient_accumulation_steps: int = setting(1, help="Micro-batches per optimizer step.")
    lr_scheduler_type: str = setting("cosine", help="transformers scheduler name: cosine | linear | constant | ...")
    warmup_ratio: float = setting(0.03, help="Fraction of steps with linear warmup.")
    weight_decay: float = setting(0.0, help="AdamW weight decay.")
    max_grad_norm: float = setting(1.0, help="Gradient clipping norm.")
    first_line_weight: float = setting(
        1.0, help="Loss weight of the answer's first line vs the other lines (1: plain token mean)."
    )
    bf16: bool = setting(False, help="bfloat16 mixed precision (GPU).", flags=("--bf16/--no-bf16",))
    fp16: bool = setting(False, help="float16 mixed precision (GPU).", flags=("--fp16/--no-fp16",))
    gradient_checkpointing: bool = setting(
        False,
        help="Recompute activations in backward (less memory, slower steps).",
        flags=(
            "--gradient-checkpointing/--no-gradient-checkpointing",
            "--gradient_checkpointing/--no_gradient_checkpointing",
        ),
    )
    deepspeed: str | None = setting(None, help="DeepSpeed JSON config (configs/zero2.json, configs/zero3.json).")
    seed: int = setting(42, help="Seed for init of adapters, shuffling and dropout.")
    dataloader_num_workers: int = setting(0, help="Processes decoding videos in parallel.")
    video: VideoSettings = group(VideoSettings)
    # bookkeeping
    overwrite: bool = setting(
        False,
        help="Allow an output dir that holds another run (its files are replaced).",
        flags=("--overwrite/--no-overwrite", "--overwrite-output/--no-overwrite-output", "--overwrite_output"),
    )
    resume_from_checkpoint: str | None = setting(
        None, help="A checkpoint DIR, or 'last' for the newest in --output-dir."
    )
    logging_steps: int = setting(10, help="Log the loss every n steps.")
    save_steps: int = setting(500, help="Checkpoint every n steps.")
    save_total_limit: int | None = setting(2, help="Keep at most this many checkpoints.")
    report_to: str = setting("tensorboard", help="tensorboard | none | wandb | all.")
    eval: bool = setting(False, help="Test-split loss at the end.", flags=("--eval/--no-eval",))
    max_train_samples: int | None = setting(None, help="Use only the first n train rows (smoke runs).")

    def __post_init__(self) -> None:
        for name in FLOAT_SETTINGS:
            if not math.isfinite(getattr(self, name)):
                raise PipelineError(f"--{name.replace('_', '-')}: must be a finite number, got {getattr(self, name)}")
        if self.bf16 and self.fp16:
            raise PipelineError("--bf16 and --fp16: choose one")
        if self.learning_rate <= 0:
            raise PipelineError(f"--learning-rate: must be > 0, got {self.learning_rate}")
        if not self.first_line_weight > 0:
            raise PipelineError(f"--first-line-weight: must be > 0, got {self.first_line_weight}")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise PipelineError("--per-device-train-batch-size and --gradient-accumulation-steps: must be >= 1")
        if self.max_steps == 0 or self.max_steps < -1:
            raise PipelineError(f"--max-steps: must be > 0 or -1, got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise PipelineError(f"--num-train-epochs: must be > 0, got {self.num_train_epochs}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise PipelineError("--weight-decay and --max-grad-norm: must be >= 0")
        if not 0 <= self.seed < 2**32:
            raise PipelineError(f"--seed: must be in 0..2**32-1, got {self.seed}")
        if self.dataloader_num_workers < 0:
            raise PipelineError(f"--dataloader-num-workers: must be >= 0, got {self.dataloader_num_workers}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise PipelineError(f"--warmup-ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.logging_steps < 1 or self.save_steps < 1:
            raise PipelineError("--logging-steps and --save-steps: must be >= 1")
        _check_scheduler(self.lr_scheduler_type)
        if self.report_to not in REPORT_TO:
            raise PipelineError(f"--report-to: {self.report_to!r} is not one of {', '.join(REPORT_TO)}")
        if not self.lora.enable and not (self.tune_mm_llm or self.tune_mm_vision or self.tune_mm_mlp):
            raise PipelineError("--tune-mm-llm/--tune-mm-vision/--tune-mm-mlp: nothing to train")
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise PipelineError(f"--deepspeed: {self.deepspeed}: file not found")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise PipelineError(f"--max-train-samples: must be >= 1, got {self.max_train_samples}")

    @classmethod
    def from_sources(
        cls, config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
    ) -> TrainConfig:
        """Defaults, then the YAML file's keys, then `overrides` (flat names or nested groups; None: not given).

        Numbers the YAML holds as text (`1e-4`) are read as numbers.

        Raises:
            PipelineError: unreadable file, unknown key, a value of the wrong kind, or an invalid value.
        """
        values: dict[str, Any] = {}
        if config_file is not None:
            source = f"--config {config_file}"
            values = typed_values(cls, nest(cls, read_config_file(Path(config_file)), source=source), source)
        values = merge(values, nest(cls, overrides or {}, source="training options"))
        return build(cls, values)

    def to_json(self) -> dict[str, Any]:
        """The resolved config (groups nested), as written to `train_config.json`."""
        return to_json(self)


@dataclass(frozen=True)
class MergeConfig:
    """What to merge and where."""

    base: str = setting(help="Base model: Hub id or local dir.")
    # adapter_config.json + adapter weights
    adapter: str = setting(help="LoRA training output dir.")
    output_dir: str = setting(help="Where the merged model goes.")
    dtype: str | None = setting(None, help="float32|bfloat16|float16.", show_default="the checkpoint's")
    overwrite: bool = overwrite_setting()

    def __post_init__(self) -> None:
        if not (Path(self.adapter) / "adapter_config.json").is_file():
            raise PipelineError(f"--adapter {self.adapter}: no adapter_config.json (not a LoRA training output)")
        out = Path(self.output_dir)
        if out.exists() and any(out.iterdir()) and not self.overwrite:
            raise PipelineError(f"--output-dir {out}: exists and is not empty (pass --overwrite to replace it)")

    def to_json(self) -> dict[str, Any]:
        """The settings, as written to `merge_config.json`."""
        return to_json(self)


def _check_scheduler(name: str) -> None:
    """Refuse a scheduler name transformers does not know (its `SchedulerType`), before any model is loaded."""
    from transformers.trainer_utils import SchedulerType

    valid = [s.value for s in SchedulerType]
    if name not in valid:
        raise PipelineError(f"--lr-scheduler-type {name!r}: not a transformers scheduler (valid: {', '.join(valid)})")


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping of a YAML (or JSON) training config file, as written."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"--config {path}: file not found") from None
    except IsADirectoryError:
        raise PipelineError(f"--config {path}: is a directory, not a YAML file") from None
    except UnicodeDecodeError as err:
        raise PipelineError(f"--config {path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise PipelineError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise PipelineError(f"--config {path}: not valid YAML ({first_line(err)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PipelineError(f"--config {path}: expected a mapping of option: value")
    return data


__all__ = ["CONFIG_FILE", "DEFAULT_DATASET", "DEFAULT_MODEL", "MergeConfig", "TrainConfig", "read_config_file"]
