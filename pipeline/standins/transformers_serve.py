"""Start `transformers serve` (an OpenAI-compatible server that runs on CPU) with two fixes for Qwen-VL video.

`python -m pipeline.standins.transformers_serve MODEL_DIR --host 127.0.0.1 --port 8000 --device cpu` takes every
option of `transformers serve` and patches the server process first (transformers 5.x):

1. **Audio from silent video.** The server lists Qwen2.5-VL and Qwen3-VL among any-to-any ("multimodal") models
   and so asks `apply_chat_template` to load the audio track of every video (`load_audio_from_video=True`, passed
   explicitly, so a request's `chat_template_kwargs` cannot turn it off). Segment mp4s have no audio track, and
   every request fails ("The best audio stream is unknown"). A model class that transformers also maps to
   image-text-to-text is reported as a vision-language model instead, which never loads audio.
2. **Qwen3-VL's token layout.** Qwen's chat template wraps the video placeholder in
   `<|vision_start|>...<|vision_end|>`, and transformers' processor expands the placeholder into per-frame
   `<t seconds><|vision_start|>...<|vision_end|>` groups inside that wrapper: an extra outer pair that neither
   Qwen's reference layout, vLLM, nor `pipeline train` has (`pipeline.model.collator.SampleEncoder` drops it).
   The served processor's template is given the bare placeholder, so served prompts are token for token the ones
   the model was trained on.

Frame sampling and the pixel budget come with each request (`chat_template_kwargs`, see
`pipeline.stages.evaluate.serving_client`). This launcher is for tests and CPU checks; at scale serve with vLLM
(TRAINING.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.model.ffmpeg_libraries import ffmpeg_problem


def collapse_video_wrapper(processor: Any) -> None:
    """Give a Qwen3-VL processor's chat template the bare video placeholder (in place; others are left alone)."""
    from pipeline.model.collator import uses_frame_groups

    template = getattr(processor, "chat_template", None)
    if not isinstance(template, str) or not uses_frame_groups(processor):
        return
    wrapped = f"{processor.vision_start_token}{processor.video_token}{processor.vision_end_token}"
    processor.chat_template = template.replace(wrapped, processor.video_token)


def patch_transformers_serve() -> None:
    """Apply both fixes of the module docstring to transformers' serving classes (idempotent)."""
    from transformers.cli.serving.model_manager import ModelManager
    from transformers.cli.serving.utils import Modality
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if getattr(ModelManager, "_pipeline_patched", False):
        return
    original_modality = ModelManager.get_model_modality
    original_processor = ModelManager._load_processor
    vlm_classes = set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.values())

    def get_model_modality(model: Any, processor: Any = None) -> Modality:
        modality = original_modality(model, processor=processor)
        if modality == Modality.MULTIMODAL and type(model).__name__ in vlm_classes:
            return Modality.VLM
        return modality

    def load_processor(self: Any, *args: Any, **kwargs: Any) -> Any:
        processor = original_processor(self, *args, **kwargs)
        collapse_video_wrapper(processor)
        return processor

    ModelManager.get_model_modality = staticmethod(get_model_modality)
    ModelManager._load_processor = load_processor
    ModelManager._pipeline_patched = True


def launch(run_dir: Path, port: int, log_file: Any = None) -> subprocess.Popen:
    """Start this launcher on 127.0.0.1:`port` for `run_dir` (CPU, offline) in its own process group; output goes to
    `log_file` (default: discarded). Wait for it and stop it with `pipeline.standins.server_process`.

    Raises:
        PipelineError: this Python's torchcodec cannot load FFmpeg's shared libraries (one line with the apt-get
            command that installs them): the server would answer HTTP 500 to every video request.
    """
    problem = ffmpeg_problem(sys.executable)
    if problem:
        raise PipelineError(problem)
    command = [sys.executable, "-m", "pipeline.standins.transformers_serve", str(run_dir), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--device", "cpu", "--log-level", "warning"]
    out = log_file if log_file is not None else subprocess.DEVNULL
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def main(argv: list[str] | None = None) -> None:
    """`transformers serve` with `argv` (default: this process's arguments), patched first."""
    patch_transformers_serve()
    from transformers.cli.transformers import app

    app(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
