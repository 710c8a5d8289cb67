"""Decode a segment mp4 with PyAV and sample frames for a Qwen-VL processor.

transformers 5.x decodes video paths only through torchcodec, so we decode ourselves and hand the processor the
frames plus `video_metadata` (with `do_sample_frames=False`). The metadata carries the source frame rate measured
from the stream's timestamps and the sampled frame indices, from which Qwen3-VL writes its `<t seconds>` tokens
and Qwen2.5-VL its temporal position step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import VideoError
from pipeline.model.families import pixel_budget_of

log = logging.getLogger(__name__)


def sample_indices(
    total_frames: int, source_fps: float, settings: VideoSettings, frame_multiple: int = 2
) -> np.ndarray:
    """Evenly spaced frame indices at `settings.fps`: (k,) int64, first 0 and last total_frames - 1.

    k = duration * fps clamped to [min_frames, max_frames] and to total_frames, rounded up to a multiple of
    `frame_multiple` (the family's frames per temporal patch: Qwen merges frames in pairs, InternVL does not) when
    the clip has enough frames. Duplicates never occur.
    """
    if total_frames < 1:
        raise ValueError("total_frames must be >= 1")
    duration_s = total_frames / source_fps
    count = int(round(duration_s * settings.fps))
    count = max(settings.min_frames, min(settings.max_frames, count))
    if count % frame_multiple:
        count += frame_multiple - count % frame_multiple
    count = min(count, total_frames)
    return np.linspace(0, total_frames - 1, count).round().astype(np.int64)


def load_video(
    path: str | Path, settings: VideoSettings, frame_multiple: int = 2
) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode `path` and return the sampled frames (`sample_indices`) and their metadata for the processor.

    Returns:
        frames: (T, H, W, 3) uint8 RGB, T = len(metadata["frames_indices"]).
        metadata: total_num_frames (int), fps (float, measured from the frame pts), duration (s), width, height,
            frames_indices (list[int], into the decoded frames), video_backend "pyav".

    Raises:
        VideoError: the file is missing, has no video stream or no decodable frame.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: video file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            decoded = [(frame.time, frame) for frame in container.decode(stream)]
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(f"{path}: cannot decode video ({type(err).__name__}: {err})") from None
    if not decoded:
        raise VideoError(f"{path}: no decodable frame")
    times = np.array([t for t, _ in decoded if t is not None], dtype=np.float64)
    total = len(decoded)
    if len(times) >= 2 and np.all(np.diff(times) > 0):
        # (n - 1) intervals between n frames: the real rate, never an assumed 30 fps.
        fps = (len(times) - 1) / (times[-1] - times[0])
    else:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 30.0
    indices = sample_indices(total, fps, settings, frame_multiple)
    frames = np.stack([decoded[i][1].to_ndarray(format="rgb24") for i in indices])
    height, width = frames.shape[1:3]
    metadata = {
        "total_num_frames": total,
        "fps": float(fps),
        "duration": total / fps,
        "width": int(width),
        "height": int(height),
        "frames_indices": indices.tolist(),
        "video_backend": "pyav",
    }
    return frames, metadata


def probe_video(path: str | Path) -> str | None:
    """None if `path` opens with PyAV and its first frame decodes, else the reason (one line)."""
    import av

    path = Path(path)
    if not path.is_file():
        return f"{path}: video file not found"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return f"{path}: no video stream"
            for _ in container.decode(video=0):
                return None
    except (av.FFmpegError, OSError, ValueError) as err:
        return f"{path}: cannot decode video ({type(err).__name__})"
    return f"{path}: no decodable frame"


__all__ = ["VideoSettings", "load_video", "probe_video", "sample_indices"]


def processor_kwargs(settings: VideoSettings, video_processor: Any, num_frames: int) -> dict[str, Any]:
    """Keyword arguments for the processor call under `settings`: pre-sampled frames, the per-frame pixel budget.

    Qwen3-VL's video processor budgets pixels over all frames of a clip (t*h*w), Qwen2-VL's per frame; both get
    `min_pixels`/`max_pixels` per frame here. The per-frame cap that transformers may add (`cap_pixels_per_frame`)
    is switched off: our budget already is per frame. InternVL resizes every frame to its one tile (the
    processor's own `size`, 448x448 in the published checkpoints): no budget applies
    (`families.pixel_budget_of`).
    """
    budget = pixel_budget_of(video_processor)
    kwargs: dict[str, Any] = {"do_sample_frames": False}
    if budget == "tile":
        return kwargs
    scale = num_frames if budget == "per_clip" else 1
    kwargs["size"] = {"shortest_edge": settings.min_pixels * scale, "longest_edge": settings.max_pixels * scale}
    if hasattr(type(video_processor), "cap_pixels_per_frame"):
        kwargs["cap_pixels_per_frame"] = False
    return kwargs
