"""`TrainConfig`: every flag of `pipeline train`, from defaults < a YAML config file < command-line overrides."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

CONFIG_FILE = "train_config.json"
"""The resolved `TrainConfig` a training run writes beside its weights or adapter."""
DEFAULT_MODEL = "Qwen/Qwen3-VL-2B-Instruct"
DEFAULT_DATASET = "qwen_video_dataset"
REPORT_TO = ("tensorboard", "none", "wandb", "all")


@dataclass
class TrainConfig:
    """A training run. Field names are the CLI flags with `-` → `_`."""

    model: str = DEFAULT_MODEL  # Hub id or local directory of the base model (AutoModelForImageTextToText)
    dataset: str = DEFAULT_DATASET  # directory written by `pipeline build-dataset` (holds train/ and test/)
    output_dir: str = "outputs/qwen_vl_motion"  # where checkpoints, the adapter/weights and the processor go
    video_root: str | None = None  # override of the dataset's recorded video root (moved segments)
    # what to train
    tune_mm_llm: bool = True  # train the language model (LoRA adapters, or full weights without LoRA)
    tune_mm_vision: bool = False  # train the vision tower
    tune_mm_mlp: bool = False  # train the vision→language projector (merger) in full
    lora_enable: bool = True  # LoRA adapters instead of full fine-tuning
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA alpha (scale = alpha / r)
    lora_dropout: float = 0.0  # LoRA dropout
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )  # leaf names of the Linear layers that get adapters (language model only unless tune_mm_vision)
    # optimisation
    learning_rate: float = 1e-4  # peak learning rate (AdamW, cosine schedule after warmup)
    num_train_epochs: float = 1.0  # epochs over the train split (ignored when max_steps > 0)
    max_steps: int = -1  # stop after this many optimizer steps (-1: run num_train_epochs)
    per_device_train_batch_size: int = 1  # rows per device per micro-batch
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    lr_scheduler_type: str = "cosine"  # transformers scheduler name: cosine | linear | constant | ...
    warmup_ratio: float = 0.03  # fraction of steps with linear warmup
    weight_decay: float = 0.0  # AdamW weight decay
    max_grad_norm: float = 1.0  # gradient clipping
    first_line_weight: float = 1.0  # loss weight of the answer's first line vs the other lines (1: plain token mean)
    bf16: bool = False  # bfloat16 mixed precision (GPU)
    fp16: bool = False  # float16 mixed precision (GPU)
    gradient_checkpointing: bool = False  # recompute activations in backward (less memory, ~30 % slower)
    deepspeed: str | None = None  # DeepSpeed JSON config (configs/zero2.json, configs/zero3.json)
    seed: int = 42  # seed for init of adapters, shuffling and dropout
    dataloader_num_workers: int = 0  # processes decoding videos in parallel
    # video input
    video_fps: float = 4.0  # frames sampled per second of clip (a 1-s clip gives 4 frames)
    video_max_frames: int = 32  # most frames per clip
    video_min_frames: int = 4  # fewest frames per clip
    video_max_pixels: int = 448 * 448  # per-frame pixel budget (frames are resized below it)
    video_min_pixels: int = 32 * 32 * 4  # per-frame pixel floor
    # bookkeeping
    overwrite_output: bool = False  # allow an output dir that holds another run (its files are replaced)
    resume_from_checkpoint: str | None = None  # a checkpoint dir, or "last" for the newest in output_dir
    logging_steps: int = 10  # log loss every n steps
    save_steps: int = 500  # checkpoint every n steps
    save_total_limit: int | None = 2  # keep at most this many checkpoints
    report_to: str = "tensorboard"  # tensorboard | none | wandb | all
    eval: bool = False  # evaluate the loss on the test split at the end
    max_train_samples: int | None = None  # use only the first n train rows (smoke runs)

    def __post_init__(self) -> None:
        if isinstance(self.lora_target_modules, str):
            self.lora_target_modules = [t.strip() for t in self.lora_target_modules.split(",") if t.strip()]
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
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise PipelineError(f"--warmup-ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.logging_steps < 1 or self.save_steps < 1:
            raise PipelineError("--logging-steps and --save-steps: must be >= 1")
        _check_scheduler(self.lr_scheduler_type)
        if self.report_to not in REPORT_TO:
            raise PipelineError(f"--report-to: {self.report_to!r} is not one of {', '.join(REPORT_TO)}")
        if not self.lora_enable and not (self.tune_mm_llm or self.tune_mm_vision or self.tune_mm_mlp):
            raise PipelineError("--tune-mm-llm/--tune-mm-vision/--tune-mm-mlp: nothing to train")
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise PipelineError(f"--deepspeed: {self.deepspeed}: file not found")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise PipelineError(f"--max-train-samples: must be >= 1, got {self.max_train_samples}")

    @classmethod
    def from_sources(
        cls, config_file: str | Path | None = None, overrides: dict[str, Any] | None = None
    ) -> TrainConfig:
        """Defaults, then the YAML file's keys (flag names, `-` or `_`), then `overrides` (None values ignored).

        Raises:
            PipelineError: unreadable file, unknown key, or an invalid value.
        """
        values: dict[str, Any] = {}
        if config_file is not None:
            values.update(read_config_file(Path(config_file)))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            source = f"{config_file}" if config_file else "options"
            raise PipelineError(f"{source}: unknown training option(s) {', '.join(unknown)}")
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_run_video_settings(run_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """The video sampling a training run in `run_dir` was trained with, as `VideoSettings` keyword arguments, and
    the file they came from; None when `run_dir` holds no training config.

    Raises:
        PipelineError: the run's config file is unreadable.
    """
    from pipeline.train.video_input import VideoSettings

    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        run_config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise PipelineError(f"{path}: unreadable training config ({err})") from None
    keys = (f.name for f in dataclasses.fields(VideoSettings))
    return {k: run_config[f"video_{k}"] for k in keys if f"video_{k}" in run_config}, path


def _check_scheduler(name: str) -> None:
    """Refuse a scheduler name transformers does not know (its `SchedulerType`), before any model is loaded."""
    from transformers.trainer_utils import SchedulerType

    valid = [s.value for s in SchedulerType]
    if name not in valid:
        raise PipelineError(f"--lr-scheduler-type {name!r}: not a transformers scheduler (valid: {', '.join(valid)})")


def read_config_file(path: Path) -> dict[str, Any]:
    """Keys of a YAML (or JSON) training config, normalised to field names."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"--config {path}: file not found") from None
    except yaml.YAMLError as err:
        raise PipelineError(f"--config {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PipelineError(f"--config {path}: expected a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_DATASET",
    "DEFAULT_MODEL",
    "TrainConfig",
    "read_config_file",
    "read_run_video_settings",
]
