"""The frames a served model sees: the same as training's, asked of the server's processor with each request.

**Same frames as training.** The training run's processor (its saved video-processor config) and video settings
(`train_config.json`) decide, per sample, how many frames training samples and with what pixel budget. Each
request asks the server's Hugging Face processor to sample exactly that many frames from the whole decoded clip
(`num_frames`, `do_sample_frames`) with that budget (`size`): vLLM through `mm_processor_kwargs` (with
`media_io_kwargs` decoding every frame with OpenCV: vLLM's own `qwen3_vl` loader pre-samples at 2 fps and
ignores `num_frames: -1`, then the processor re-samples the sampled frames and fails with HTTP 400; OpenCV's frames
were byte-identical to our PyAV ones), `transformers serve` through `chat_template_kwargs`.

**Same template as training.** The family's chat-template variables (Qwen3.5: `enable_thinking: false`) go into
every request's `chat_template_kwargs`, whatever the engine: without them a Qwen3.5 4B or larger starts thinking.

Before any request, the frame indices that processor's own `sample_frames` picks are compared with training's
(`pipeline.model.video_input.sample_indices`); a family whose sampler picks other frames is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import PipelineError, first_line
from pipeline.model.inference import GREEDY_SETTINGS

VLLM_VIDEO_BACKEND = "opencv"
"""vLLM's video decoder that hands the processor every frame (its `qwen3_vl` loader pre-samples)."""


def probe_frames(path: str | Path) -> tuple[int, float]:
    """(frame count, frames per second) of a video from its container header (no decoding unless it is silent)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            total = stream.frames or sum(1 for _ in container.decode(stream))
    except (av.FFmpegError, OSError, IndexError) as err:
        raise PipelineError(f"{path}: cannot read the video header ({first_line(err)})") from None
    if not total or not rate:
        raise PipelineError(f"{path}: no frame count or frame rate in the video header")
    return int(total), float(rate)


@dataclass
class FramePlan:
    """Per-sample frame settings for the server, from the training run's processor and video settings."""

    video_processor: Any  # the training run's saved video processor (config only, no weights)
    settings: VideoSettings
    frame_multiple: int  # the family's frames per temporal patch (`Family.frame_multiple`), as in training
    template_kwargs: dict[str, Any] = field(default_factory=dict)  # the family's chat-template variables

    def request_fields(self, engine: str, paths: str | Path | Sequence[str | Path]) -> dict[str, Any]:
        """Extra request fields that make the server sample training's frames of a sample's video(s) (one path, or
        one per camera) with its pixel budget. A request carries one frame count for all its videos.

        Raises:
            PipelineError: the server's sampler would pick other frames than training does, or the videos of one
                sample sample different frame counts (training refuses them too).
        """
        template = {"chat_template_kwargs": dict(self.template_kwargs)} if self.template_kwargs else {}
        if engine == "plain":
            return template
        from pipeline.model.video_input import processor_kwargs

        paths = [paths] if isinstance(paths, str | Path) else list(paths)
        counts = [self._checked_frame_count(path) for path in paths]
        if len(set(counts)) > 1:
            raise PipelineError(f"{paths[0]}: the videos of one sample sample different frame counts ({counts})")
        kwargs = processor_kwargs(self.settings, self.video_processor, counts[0])
        kwargs |= {"do_sample_frames": True, "num_frames": counts[0], "fps": None}
        if engine == "transformers":
            return {"chat_template_kwargs": self.template_kwargs | kwargs}
        media = {"video": {"num_frames": -1, "video_backend": VLLM_VIDEO_BACKEND}}
        return {"mm_processor_kwargs": kwargs, "media_io_kwargs": media, **template}

    def _checked_frame_count(self, path: str | Path) -> int:
        """Training's frame count for `path`, after checking that the server's sampler picks the same frames."""
        from transformers.video_utils import VideoMetadata

        from pipeline.model.video_input import sample_indices

        total, fps = probe_frames(path)
        train = sample_indices(total, fps, self.settings, self.frame_multiple)
        metadata = VideoMetadata(total_num_frames=total, fps=fps, duration=total / fps)
        served = self.video_processor.sample_frames(metadata, num_frames=len(train), fps=None)
        if list(map(int, served)) != train.tolist():
            raise PipelineError(
                f"{path}: {type(self.video_processor).__name__} samples frames {list(map(int, served))} where "
                f"training sampled {train.tolist()}: a server would not see the training frames"
            )
        return len(train)


def decoding_fields(engine: str, processor: Any, max_tokens: int, samples: int = 1) -> dict[str, Any]:
    """Request fields beyond temperature (`sampling_fields`) that make the server decode as `pipeline evaluate
    --model` does, greedy or (`samples` > 1) sampled.

    A checkpoint's `generation_config.json` may carry a `repetition_penalty` (Qwen2.5-VL's published one is 1.05)
    that servers apply by default even to greedy requests (`pipeline.model.inference`): vLLM gets 1.0 as a
    sampling parameter (and, when sampling, the in-process `top_k`), transformers serve the in-process generation
    config itself (its `generation_config` field replaces the checkpoint's; `do_sample` when sampling).
    """
    if engine == "vllm":
        return {"repetition_penalty": 1.0, **({"top_k": GREEDY_SETTINGS["top_k"]} if samples > 1 else {})}
    if engine == "transformers":
        from pipeline.model.inference import generation_record, greedy_generation_config

        config = greedy_generation_config(processor, max_tokens)
        config.do_sample = samples > 1
        return {"generation_config": json.dumps(generation_record(config))}
    return {}


def sampling_fields(samples: int) -> dict[str, Any]:
    """The standard chat-completion fields of the answers' decoding: greedy (temperature 0) for one answer; for
    `samples` > 1, `samples` choices (the OpenAI `n`) sampled as `pipeline evaluate --model --num-samples` samples:
    the in-process generation's temperature and top_p (`GREEDY_SETTINGS`, which apply once sampling is on)."""
    if samples == 1:
        return {"temperature": 0.0}
    return {"n": samples, "temperature": GREEDY_SETTINGS["temperature"], "top_p": GREEDY_SETTINGS["top_p"]}


def load_run_processor(run_dir: Path) -> Any:
    """The processor a training run saved (tokenizer and video processor; no weights).

    Raises:
        PipelineError: no loadable processor in `run_dir`.
    """
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(str(run_dir))
    except (OSError, ValueError, KeyError) as err:
        raise PipelineError(f"--run-dir {run_dir}: no processor saved there ({first_line(err)})") from None
    if getattr(processor, "video_processor", None) is None:
        raise PipelineError(f"--run-dir {run_dir}: the saved processor has no video processor")
    return processor


__all__ = [
    "VLLM_VIDEO_BACKEND",
    "FramePlan",
    "decoding_fields",
    "first_line",
    "load_run_processor",
    "probe_frames",
    "sampling_fields",
]
