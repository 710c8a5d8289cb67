"""Sizes of the hermetic runs (the demo, the learning test and benchmarks) and the stage configs they imply: the
tiny model's shape, the dataset's short prompt, and full fine-tuning of every part of a random-init model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoProfile:
    """Sizes of one demo run."""

    chunks: int  # synthetic chunks (downloaded with --all)
    clips_per_chunk: int  # clips in each chunk
    duration_s: float  # clip length, s
    render_size: tuple[int, int]  # synthetic camera resolution, px
    segment_size: tuple[int, int]  # segment resolution fed to the model, px
    test_ratio: float  # share of clips held out
    hidden_size: int  # tiny model text width
    layers: int  # tiny model text layers
    # tiny model text attention heads (head size hidden_size / heads). vLLM's CPU attention takes 32, 64, 80 and
    # more (16 and 24 start, then fail at the first request): the quick profile's 2 of 32 can be served with it;
    # the default keeps the 4 of 24 its figures in docs/RESULTS.md were measured with
    heads: int
    vision_hidden_size: int  # tiny model vision width
    vision_depth: int  # tiny model vision blocks
    bpe_ranks: int | None  # tiny model vocabulary: Qwen's first n BPE tokens (None: the full Qwen vocabulary)
    tile_size: int  # tiny InternVL's tile side, px (16 tokens per frame at 112; the published 448 gives 256)
    video_fps: float  # frames sampled per second of segment
    max_steps: int  # optimizer steps
    batch_size: int  # rows per step
    learning_rate: float  # peak learning rate (full fine-tuning of a random-init model)
    first_line_weight: float  # loss weight of the answer's first line (pipeline.model.loss)
    eval_samples: int | None  # held-out samples scored (None: all)
    max_new_tokens: int  # generation budget per answer (a full 30-pair answer is ~300-360 tokens)
    # What the segments carry and show (pipeline.contracts.targets.TargetSettings): the default is one front camera
    # and the next second's (speed, curvature) at 30 Hz; the alpamayo profiles follow NVIDIA's Alpamayo 1.
    target_kind: str = "motion"  # "motion" or "trajectory"
    cameras: tuple[str, ...] = ()  # camera features, in order (empty: the front wide camera only)
    horizon_s: float = 1.0  # future horizon, s
    target_hz: int = 30  # future steps per second, Hz
    history_steps: int = 16  # trajectory history rows (the last at the window's end)
    history_hz: float = 10.0  # trajectory history rows per second, Hz
    frames_per_camera: int | None = None  # frames per camera (None: the whole 1-s window)
    frame_spacing_s: float = 0.1  # spacing of those frames, s


# The README's demo (its measured run, and why 8 chunks rather than 4: docs/RESULTS.md).
_DEFAULT = DemoProfile(
    chunks=8,
    clips_per_chunk=12,
    duration_s=20.0,
    render_size=(256, 144),
    segment_size=(128, 72),
    test_ratio=0.25,
    hidden_size=96,
    layers=4,
    heads=4,
    vision_hidden_size=64,
    vision_depth=2,
    bpe_ranks=5000,
    tile_size=112,
    video_fps=8.0,
    max_steps=1200,
    batch_size=8,
    learning_rate=3e-3,
    first_line_weight=10.0,
    eval_samples=None,
    max_new_tokens=400,
)
PROFILES = {
    # CI: the whole chain in well under 2 minutes on 2 cores; the default's sizes, smaller.
    "quick": replace(
        _DEFAULT,
        chunks=2,
        clips_per_chunk=2,
        duration_s=4.0,
        hidden_size=64,
        layers=1,
        heads=2,
        vision_hidden_size=32,
        vision_depth=1,
        bpe_ranks=None,
        video_fps=4.0,
        max_steps=4,
        batch_size=2,
        learning_rate=1e-3,
        eval_samples=2,
        max_new_tokens=48,
    ),
    "default": _DEFAULT,
}
# Alpamayo 1's inputs and targets (NVlabs/alpamayo): 4 cameras x 4 frames 0.1 s apart, 1.6 s of history at 10 Hz,
# 6.4 s of future positions at 10 Hz. Clips must hold the window, the history and the horizon.
_ALPAMAYO = {
    "target_kind": "trajectory",
    "cameras": (
        "camera_front_wide_120fov",
        "camera_cross_left_120fov",
        "camera_cross_right_120fov",
        "camera_front_tele_30fov",
    ),
    "horizon_s": 6.4,
    "target_hz": 10,
    "history_steps": 16,
    "history_hz": 10.0,
    "frames_per_camera": 4,
    "frame_spacing_s": 0.1,
}
# A 64-point answer of `x,y` lines is up to ~16 tokens a line with Qwen's digit-by-digit tokens (evaluate's estimate).
PROFILES["alpamayo"] = replace(_DEFAULT, **_ALPAMAYO, max_new_tokens=1100)
PROFILES["alpamayo-quick"] = replace(PROFILES["quick"], **_ALPAMAYO, duration_s=10.0, max_new_tokens=1100)


def tiny_model_config(profile: DemoProfile, family: str, seed: int) -> Any:
    """The `TinyModelConfig` of a profile."""
    from pipeline.standins.tiny_model import TinyModelConfig

    return TinyModelConfig(
        family=family,
        hidden_size=profile.hidden_size,
        layers=profile.layers,
        heads=profile.heads,
        intermediate_size=2 * profile.hidden_size,
        vision_hidden_size=profile.vision_hidden_size,
        vision_depth=profile.vision_depth,
        bpe_ranks=profile.bpe_ranks,
        tile_size=profile.tile_size,
        seed=seed,
    )


def tiny_dataset_config(profile: DemoProfile, segments_dir: Path, output_dir: Path, seed: int, history: bool) -> Any:
    """The `DatasetConfig` of a profile: the dataset's defaults with a short prompt, split by clip.

    A random-init model cannot read instructions; the default prompt (~200 more tokens) would only lengthen every
    sample and slow each training step (docs/RESULTS.md). Split by clip, not by drive (the default where records
    have drive keys): the synthetic clips of one drive share only their data_collection row, not their motion, so
    there is no leakage to keep apart, and the few coarse drive keys of a small profile (2 in the quick one) would
    often leave a side empty; the measured runs and the learning test's chosen held-out clips are splits by clip.
    """
    from pipeline.stages.dataset.stage import DatasetConfig

    return DatasetConfig(
        segments_path=segments_dir / "metadata" / "segments.parquet",
        output_dir=output_dir,
        test_ratio=profile.test_ratio,
        split_by="clip",
        seed=seed,
        history=history,
        system_prompt="You plan the ego car's motion.",
        target_hz=profile.target_hz,
        prompt=_short_prompt(profile),
        overwrite=True,
    )


def _short_prompt(profile: DemoProfile) -> str:
    """The demo dataset's short prompt: the answer's lines, format and units."""
    if profile.target_kind == "trajectory":
        n = round(profile.horizon_s * profile.target_hz)
        return f"Next {profile.horizon_s:g} s: {n} lines `x,y` (m, x forward, y left)."
    return f"Next second: {profile.target_hz} lines `velocity,curvature` (m/s, 1/km)."


def tiny_train_config(profile: DemoProfile, model_dir: Path, dataset_dir: Path, output_dir: Path, seed: int) -> Any:
    """The `TrainConfig` of a profile: full fine-tuning of every part of a random-init model, no checkpoints."""
    from pipeline.contracts.run_config import LoraSettings, VideoSettings
    from pipeline.stages.train.config import TrainConfig

    return TrainConfig(
        model=str(model_dir),
        dataset=str(dataset_dir),
        output_dir=str(output_dir),
        lora=LoraSettings(enable=False),
        tune_mm_llm=True,
        tune_mm_vision=True,
        tune_mm_mlp=True,
        learning_rate=profile.learning_rate,
        max_steps=profile.max_steps,
        per_device_train_batch_size=profile.batch_size,
        first_line_weight=profile.first_line_weight,
        warmup_ratio=0.05,
        logging_steps=max(1, min(10, profile.max_steps // 10)),
        save_steps=max(profile.max_steps, 1),
        report_to="none",
        video=VideoSettings(fps=profile.video_fps),
        seed=seed,
        overwrite=True,
    )


def tiny_synth_config(profile: DemoProfile, output_dir: Path, seed: int) -> Any:
    """The `SynthConfig` of a profile, without frame codes: a model must not read the time in the clip from a
    stamped frame index."""
    from pipeline.standins.synth_config import SynthConfig

    width, height = profile.render_size
    return SynthConfig(
        output_dir=output_dir,
        n_chunks=profile.chunks,
        clips_per_chunk=profile.clips_per_chunk,
        width=width,
        height=height,
        duration_s=profile.duration_s,
        seed=seed,
        frame_code=False,
        **({"cameras": profile.cameras} if profile.cameras else {}),
    )


def tiny_segment_config(profile: DemoProfile, input_dir: Path, output_dir: Path) -> Any:
    """The `SegmentConfig` of a profile: every clip, at the profile's segment size."""
    from pipeline.stages.segment.config import SegmentConfig

    targets = {
        "target_kind": profile.target_kind,
        "horizon_s": profile.horizon_s,
        "target_hz": profile.target_hz,
        "history_steps": profile.history_steps,
        "history_hz": profile.history_hz,
        "frames_per_camera": profile.frames_per_camera,
        "frame_spacing_s": profile.frame_spacing_s,
    }
    if profile.cameras:
        targets["cameras"] = profile.cameras
    return SegmentConfig(
        input_dir=input_dir, output_dir=output_dir, max_clips=None, size=profile.segment_size, **targets
    )


def tiny_evaluate_config(profile: DemoProfile, dataset_dir: Path, model_dir: Path, output_dir: Path) -> Any:
    """The `EvaluateConfig` of a profile: the trained model in-process on the profile's held-out samples."""
    from pipeline.model.inference import GenerationSettings
    from pipeline.stages.evaluate.stage import EvaluateConfig

    return EvaluateConfig(
        dataset=dataset_dir,
        output_dir=output_dir,
        model=str(model_dir),
        max_samples=profile.eval_samples,
        generation=GenerationSettings(max_new_tokens=profile.max_new_tokens),
        batch_size=8,
    )


__all__ = [
    "PROFILES",
    "DemoProfile",
    "tiny_dataset_config",
    "tiny_evaluate_config",
    "tiny_model_config",
    "tiny_segment_config",
    "tiny_synth_config",
    "tiny_train_config",
]
