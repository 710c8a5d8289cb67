"""Our video sampling in each export framework's own terms, so a model trained there sees our frames and pixels.

`pipeline train` and `pipeline evaluate` sample a clip's frames with `VideoSettings` (frame rate, min/max frames,
per-frame pixel budget). Each framework reads its own knobs, with its own defaults, and a model trained with
those defaults sees other pixels than our evaluator gives it. This module writes, per framework, a ready-to-run
file that sets the knobs to our values, and states what the framework cannot express:

- ms-swift: environment variables read by `qwen_vl_utils` (`FPS`, `FPS_MIN_FRAMES`, `FPS_MAX_FRAMES`,
  `VIDEO_MIN_PIXELS`, `VIDEO_MAX_PIXELS`) in a `train.sh` around `swift sft`.
- LLaMA-Factory: the `video_fps` / `video_maxlen` / `video_max_pixels` / `video_min_pixels` keys of a training
  YAML (`train_lora.yaml`).
- qwen-vl-finetune: its `--video_fps` / `--video_max_frames` / `--video_min_frames` / `--video_max_pixels` /
  `--video_min_pixels` arguments in a `train.sh`.

The differences were read in the frameworks' own code (ms-swift 4.6.0 with qwen-vl-utils 0.0.14, LLaMA-Factory
0.9.5) and are checked by `tests/dataset/test_export_frameworks.py`, which encodes an exported row with each
framework and compares it with our `SampleEncoder`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from pipeline.contracts.run_config import VideoSettings


@dataclass(frozen=True)
class FrameworkModel:
    """How one model family is named in each framework."""

    swift_model_type: str  # ms-swift `--model_type`
    llama_factory_template: str  # LLaMA-Factory `template` (the no-thinking variant for Instruct models)


# Model families by a marker in the model id (lower case, `.` and `-` removed).
FAMILIES = {
    "qwen3vl": FrameworkModel(swift_model_type="qwen3_vl", llama_factory_template="qwen3_vl_nothink"),
    "qwen25vl": FrameworkModel(swift_model_type="qwen2_5_vl", llama_factory_template="qwen2_vl"),
}


def framework_model(model: str) -> FrameworkModel:
    """The family names of `model` (a Hub id or directory name), Qwen3-VL's when the name says nothing."""
    key = model.lower().replace(".", "").replace("-", "").replace("_", "")
    for marker, family in FAMILIES.items():
        if marker in key:
            return family
    return FAMILIES["qwen3vl"]


def swift_env(video: VideoSettings) -> dict[str, str]:
    """ms-swift's environment variables for `video` (read by qwen_vl_utils when ms-swift loads a Qwen-VL).

    qwen_vl_utils >= 0.0.14 turns `VIDEO_*_PIXELS` into token counts (pixels // (patch * merge)^2): exact for
    budgets that are multiples of 32^2 (Qwen3-VL) or 28^2 (Qwen2.5-VL), as the defaults are.
    """
    return {
        "FPS": f"{video.fps:g}",
        "FPS_MIN_FRAMES": str(video.min_frames),
        "FPS_MAX_FRAMES": str(video.max_frames),
        "VIDEO_MIN_PIXELS": str(video.min_pixels),
        "VIDEO_MAX_PIXELS": str(video.max_pixels),
    }


def swift_script(video: VideoSettings, model: str, folder: Path) -> str:
    """`train.sh` for ms-swift: our video variables, then `swift sft` on this export (extra args pass through)."""
    family = framework_model(model)
    exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in swift_env(video).items())
    return f"""#!/usr/bin/env bash
# ms-swift LoRA fine-tuning on this export with pipeline's video sampling (written by `pipeline export`).
# Usage: bash train.sh [more swift sft arguments]
set -euo pipefail
{exports}
swift sft \\
    --model {shlex.quote(model)} --model_type {family.swift_model_type} \\
    --dataset {shlex.quote(str(folder / "train.jsonl"))} --val_dataset {shlex.quote(str(folder / "test.jsonl"))} \\
    --tuner_type lora --torch_dtype bfloat16 --freeze_vit true \\
    --output_dir output "$@"
"""


def llama_factory_video_keys(video: VideoSettings) -> dict[str, int | float]:
    """LLaMA-Factory's video keys for `video` (its frame count has no minimum: see `differences`)."""
    return {
        "video_fps": video.fps,
        "video_maxlen": video.max_frames,
        "video_max_pixels": video.max_pixels,
        "video_min_pixels": video.min_pixels,
    }


def llama_factory_yaml(video: VideoSettings, model: str, folder: Path, name: str) -> str:
    """`train_lora.yaml` for `llamafactory-cli train`: this export's dataset and our video keys."""
    family = framework_model(model)
    keys = "\n".join(f"{k}: {v}" for k, v in llama_factory_video_keys(video).items())
    return f"""# LLaMA-Factory LoRA fine-tuning on this export with pipeline's video sampling
# (written by `pipeline export`). Usage: llamafactory-cli train train_lora.yaml
model_name_or_path: {model}
template: {family.llama_factory_template}
stage: sft
do_train: true
finetuning_type: lora
lora_target: all
freeze_vision_tower: true
dataset_dir: {folder}
dataset: {name}_train
eval_dataset: {name}_test
cutoff_len: 4096
{keys}
bf16: true
output_dir: output
"""


def qwen_vl_finetune_script(video: VideoSettings, model: str, name: str) -> str:
    """`train.sh` for qwen-vl-finetune (run from its `qwen-vl-finetune/` folder after registering the dataset)."""
    return f"""#!/usr/bin/env bash
# qwen-vl-finetune with pipeline's video sampling (written by `pipeline export`). Register the dataset first
# (physicalai_av_data.py), then run this from the qwen-vl-finetune folder; extra arguments pass through.
set -euo pipefail
torchrun --nproc_per_node "${{NPROC_PER_NODE:-1}}" qwenvl/train/train_qwen.py \\
    --model_name_or_path {shlex.quote(model)} --dataset_use {name}_train \\
    --video_fps {video.fps:g} --video_max_frames {video.max_frames} --video_min_frames {video.min_frames} \\
    --video_max_pixels {video.max_pixels} --video_min_pixels {video.min_pixels} \\
    --tune_mm_llm True --tune_mm_vision False --tune_mm_mlp False \\
    --bf16 --output_dir output "$@"
"""


def differences(framework: str) -> str:
    """Markdown: what `framework` cannot express of our sampling, and what that changes per clip."""
    if framework == "ms-swift":
        return """\
- Frames, frame indices, pixel grid and `<t seconds>` timestamps are ours (checked on an exported row with
  ms-swift 4.6.0 + qwen-vl-utils 0.0.14: same video grid, same video tokens).
- Its Qwen-VL templates keep the chat template's `<|vision_start|>…<|vision_end|>` pair around the per-frame
  groups that the processor writes, so each clip costs 2 more tokens than in `pipeline train` (which drops the
  outer pair, as Qwen's reference code does); there is no setting for it.
- Its frame count is `duration * FPS` rounded down to an even number; ours is rounded to the nearest and then up
  to an even number. They agree for even counts (the default: 4 frames per 1-s clip).
- Labels are the answer, `<|im_end|>` and the newline after it (ours stop at `<|im_end|>`)."""
    if framework == "llama-factory":
        return """\
- Same frame count, pixel grid, number of video tokens, prompt and labels (checked on an exported row with
  LLaMA-Factory 0.9.5).
- Frame indices are truncated (`linspace(...).astype(int)`) where ours are rounded: for 4 frames of a 30-frame
  clip it takes frames 0, 9, 19, 29 where we take 0, 10, 19, 29 (one frame 33 ms earlier), so the first
  `<t seconds>` timestamp reads `<0.1 seconds>` where ours reads `<0.2 seconds>`; there is no setting for it.
- Its frame count has no minimum (`video_maxlen` is the maximum), and the checkpoint's own
  `video_processor.size` budget still applies after `video_min_pixels` / `video_max_pixels` (it does not bind
  for 448x252 segments).
- Use the `*_nothink` template for Instruct checkpoints: the `qwen3_vl` template adds an empty
  `<think>\\n\\n</think>` block to every labelled answer.
- Labels are the answer, `<|im_end|>` and the newline after it (ours stop at `<|im_end|>`)."""
    return """\
- qwen-vl-finetune is not on PyPI, so this export is not checked against its code here. Its arguments have the
  same names and meanings as ours; its frame sampling follows qwen-vl-utils (see the ms-swift notes)."""


def readme_section(framework: str, video: VideoSettings, run_file: str) -> str:
    """The export README's video section: our settings, the ready file that applies them, the differences."""
    return f"""
## Video settings (the same frames and pixels as `pipeline train` / `pipeline evaluate`)

{video.fps:g} frames per second of clip, {video.min_frames}-{video.max_frames} frames per clip,
{video.min_pixels}-{video.max_pixels} pixels per frame. `{run_file}` applies them; evaluate the result with the
same values (`pipeline evaluate --video-fps {video.fps:g} --video-min-frames {video.min_frames}
--video-max-frames {video.max_frames} --video-min-pixels {video.min_pixels} --video-max-pixels {video.max_pixels}`).

What this framework does differently:

{differences(framework)}
"""


def run_file(framework: str, video: VideoSettings, model: str, folder: Path, name: str) -> tuple[str, str]:
    """(file name, text) of the ready-to-run file for `framework`, whose paths point at `folder`."""
    if framework == "ms-swift":
        return "train.sh", swift_script(video, model, folder)
    if framework == "llama-factory":
        return "train_lora.yaml", llama_factory_yaml(video, model, folder, name)
    return "train.sh", qwen_vl_finetune_script(video, model, name)


__all__ = [
    "FAMILIES",
    "FrameworkModel",
    "differences",
    "framework_model",
    "llama_factory_video_keys",
    "llama_factory_yaml",
    "qwen_vl_finetune_script",
    "readme_section",
    "run_file",
    "swift_env",
    "swift_script",
]
