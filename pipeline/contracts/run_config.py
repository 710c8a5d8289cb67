"""The run config a training run writes (`train_config.json`) and what other stages read back from it: the base
model, the LoRA shape and the video sampling. `TrainConfig` (stage `train`) holds these groups; `evaluate`, `export`
and `merge-lora` read them here."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.options import group, nest, parse_fields, setting

DEFAULT_MODEL = "Qwen/Qwen3-VL-2B-Instruct"
CONFIG_FILE = "train_config.json"
"""The resolved `TrainConfig` a run writes beside its adapter/weights (read back by `read_run_config`)."""


@dataclass(frozen=True)
class VideoSettings:
    """How frames are sampled from a clip and how large the processor may make them (`--video-*` options)."""

    fps: float = setting(4.0, help="Frames sampled per second of clip (a 1-s clip gives 4 frames).")
    max_frames: int = setting(32, help="Most frames per clip.")
    min_frames: int = setting(4, help="Fewest frames per clip (Qwen's own minimum; short clips still give this many).")
    max_pixels: int = setting(448 * 448, help="Per-frame pixel budget, H*W (the processor's `longest_edge`).")
    min_pixels: int = setting(32 * 32 * 4, help="Per-frame pixel floor, H*W (the processor's `shortest_edge`).")

    def __post_init__(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise PipelineError(f"--video-fps: must be a positive number, got {self.fps}")
        if self.min_frames < 1:
            raise PipelineError(f"video min_frames: must be >= 1, got {self.min_frames}")
        if self.max_frames < self.min_frames:
            raise PipelineError(f"--video-max-frames: {self.max_frames} is below min_frames {self.min_frames}")
        if self.min_pixels < 1 or self.max_pixels < self.min_pixels:
            raise PipelineError(
                f"--video-max-pixels/--video-min-pixels: need 1 <= min ({self.min_pixels}) <= max ({self.max_pixels})"
            )


def _comma_separated(names: str | Sequence[str]) -> tuple[str, ...]:
    """Names from "q_proj, v_proj" (or a list of names): ("q_proj", "v_proj")."""
    if isinstance(names, str):
        return tuple(n.strip() for n in names.split(",") if n.strip())
    return tuple(names)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapter shape (peft LoraConfig; `--lora-*` options)."""

    enable: bool = setting(
        True,
        help="LoRA adapters (on) or full fine-tuning (off).",
        flags=("--lora-enable/--no-lora-enable", "--lora_enable/--no_lora_enable"),
    )
    r: int = setting(8, help="LoRA rank.")
    alpha: int = setting(16, help="LoRA alpha (scale = alpha / r).")
    dropout: float = setting(0.0, help="Dropout on the adapter input.")
    target_modules: tuple[str, ...] = setting(
        (),
        help="Leaf names of the Linear layers that get adapters, comma-separated (language model only unless "
        "--tune-mm-vision).",
        cli_type=str,
        show_default="the family's language-model Linear layers (TRAINING.md)",
        parse=_comma_separated,
    )

    def __post_init__(self) -> None:
        parse_fields(self)
        if self.r < 1:
            raise PipelineError(f"--lora-r: must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise PipelineError(f"--lora-dropout: must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class RunSettings:
    """The part of a run's `train_config.json` other stages read back."""

    model: str = setting(DEFAULT_MODEL, help="Hub id or local dir of the base model.")
    lora: LoraSettings = group(LoraSettings)
    video: VideoSettings = group(VideoSettings)


def read_run_config(directory: str | Path) -> tuple[dict[str, Any], Path] | None:
    """The settings a training run recorded in `directory` (its `train_config.json`), nested as
    `RunSettings`' fields, and the file they came from; None if the directory holds no such file.

    Older runs wrote flat keys (`video_fps`, `lora_r`); they are read into the same groups. Keys this version
    does not know are dropped, so that a newer or older run still gives its video settings.

    Raises:
        PipelineError: the file exists but is not a JSON object.
    """
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise PipelineError(f"{path}: unreadable training config ({err})") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: unreadable training config (not a JSON object)")
    known = {k: v for k, v in data.items() if _is_known(k, v)}
    return nest(RunSettings, known, source=str(path)), path


def _is_known(key: str, value: Any) -> bool:
    try:
        nest(RunSettings, {key: value})
    except PipelineError:
        return False
    return True
