"""`EvaluateConfig`: the settings of `pipeline evaluate` (light to import: the CLI reads it)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import PipelineError
from pipeline.core.options import group, overwrite_setting, parse_fields, setting, to_json
from pipeline.core.secrets import without_credentials
from pipeline.model.inference import GenerationSettings

log = logging.getLogger(__name__)

ENGINES = ("vllm", "transformers", "plain")
"""Server kinds: which request fields carry the frame settings (`plain`: none, the server's own sampling)."""

MEDIA = ("file", "base64")
"""How the video travels: a path on a shared file system, or the file's bytes as a base64 data URL."""


def _optional_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _url_without_credentials(url: str) -> str:
    return without_credentials(url)[0]


@dataclass(frozen=True)
class ServerSettings:
    """How `pipeline evaluate --server` talks to the server (the API key itself is never stored)."""

    # Base URL as OpenAI clients take it; giving it turns the server path on.
    url: str = setting(
        help="Ask this OpenAI-compatible server instead, e.g. http://host:8000/v1.",
        flags=("--server",),
        parse=_url_without_credentials,
    )
    # None = the only model the server lists.
    served_model: str | None = setting(None, help="Model name in each request [the only one served].")
    # vllm (mm_processor_kwargs, media_io_kwargs), transformers (chat_template_kwargs), plain (none: the server's own
    # frame sampling, e.g. for SGLang).
    engine: str = setting("vllm", help="vllm (mm_processor_kwargs), transformers (chat_template_kwargs), plain.")
    # file: the server reads the segment path (shared file system); base64: the bytes go in the request.
    media: str = setting("file", help="file (server shares the file system) or base64 (bytes in the request).")
    concurrency: int = setting(8, help="Requests in flight at once.", flags=("--concurrency",))
    # Exponential backoff, then a failure.
    max_retries: int = setting(
        4, help="Retries on 429/5xx/timeouts/dropped connections, with backoff.", flags=("--max-retries",)
    )
    # Then the request is retried.
    timeout_s: float = setting(600.0, help="Seconds per request.", flags=("--request-timeout",))
    # Unset: "EMPTY", what vLLM accepts without --api-key.
    api_key_env: str = setting(
        "OPENAI_API_KEY", help="Environment variable holding the server's API key.", flags=("--api-key-env",)
    )
    max_failed_share: float = setting(
        0.1, help="Exit 2 when more than this share of requests failed.", flags=("--max-failed-share",)
    )
    # `parity.check_parity`: the first samples' served prompt against training's, before the run.
    parity_check: bool = setting(
        True,
        help="Compare the first served prompts with training's (exit 2 if they differ).",
        flags=("--parity-check/--no-parity-check",),
    )

    def __post_init__(self) -> None:
        had_credentials = without_credentials(self.url)[1]
        parse_fields(self)
        if had_credentials:  # never sent (it would be Basic auth instead of the key) and never written
            log.warning(
                "--server: dropped the user name and password in the URL; give the key in $%s", self.api_key_env
            )
        if not self.url.startswith(("http://", "https://")):
            raise PipelineError(f"--server {self.url}: expected a base URL such as http://host:8000/v1")
        if self.engine not in ENGINES:
            raise PipelineError(f"--engine {self.engine}: expected one of {', '.join(ENGINES)}")
        if self.media not in MEDIA:
            raise PipelineError(f"--media {self.media}: expected one of {', '.join(MEDIA)}")
        if self.engine == "transformers" and self.media == "base64":
            raise PipelineError("--media base64: transformers serve reads videos from paths or http(s) URLs only")
        if not 0.0 <= self.max_failed_share <= 1.0:
            raise PipelineError(f"--max-failed-share {self.max_failed_share}: expected a share in [0, 1]")
        if self.concurrency < 1 or self.max_retries < 0 or not self.timeout_s > 0:
            raise PipelineError("--concurrency must be >= 1, --max-retries >= 0 and the timeout > 0")

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env) or "EMPTY"


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of one evaluation run (written to `metrics.json` with the results)."""

    # Stage-3 dataset directory (holds `{train,test}/` in the `save_to_disk` layout and `dataset_meta.json`).
    dataset: Path = setting(
        Path("qwen_video_dataset"),
        help="Dataset directory from `pipeline build-dataset`.",
        flags=("--dataset",),
        parse=Path,
    )
    # Created if missing: report.md, metrics.json, predictions.csv and the PNG plots.
    output_dir: Path = setting(Path("eval_report"), help="Directory for the report files.", parse=Path)
    # The train split must also exist (it defines the train-mean baseline and fallback).
    split: str = setting("test", help="Split to score.")
    # Exactly one of `model`, `predictions` and `server` is given.
    model: str | None = setting(None, help="Model directory or Hub id to generate answers with.")
    adapter: Path | None = setting(
        None, help="LoRA adapter directory applied on top of --model.", parse=_optional_path
    )
    predictions: Path | None = setting(
        None, help='Score this JSONL of {"id", "text"} answers instead (no model loaded).', parse=_optional_path
    )
    # Ask an OpenAI-compatible server instead (`serving_client`); answers go to output_dir/predictions.jsonl.
    server: ServerSettings | None = group(ServerSettings, prefix="", optional=True)
    # Its train_config.json and processor set the server's frames; None = the served model's name when it is a
    # local directory (as with transformers serve: `training_run_dir`).
    run_dir: Path | None = setting(
        None, help="Training output dir whose settings set the served frames [--served-model].", parse=_optional_path
    )
    # Same format `predictions` reads.
    save_predictions: bool = setting(False, help="Write the answers to predictions.jsonl.")
    batch_size: int = setting(4, help="Samples per generation batch.")
    # k answers per sample: 1 = greedy (today's); k > 1 samples each (do_sample with the run's other generation
    # settings; a server is asked for k choices, the OpenAI `n`), scores the first and reports minADE/minFDE over
    # the k for trajectory targets.
    num_samples: int = setting(1, help="Answers per sample (k > 1: sampled; minADE over k for trajectories).")
    # `evaluate --clips` (`clip_selection`): a parquet with a clip_id column, or one id per line; None = every clip.
    clips: Path | None = setting(
        None, help="Score only these clips: parquet with clip_id, or one id per line.", parse=_optional_path
    )
    # In split order; with `server`, about this many in whole clips spread over the split. None = all.
    max_samples: int | None = setting(None, help="Score only the first N samples.")
    generation: GenerationSettings = group(GenerationSettings, prefix="")
    # Overrides of the training run's video settings (train_config.json in --adapter, --run-dir, else in --model;
    # else the training defaults); laid over them by `resolved_run.resolve_run`.
    video: dict[str, Any] = group(VideoSettings, partial_default="the training run's, else {}")
    video_root: Path | None = setting(None, help="Segments moved since build-dataset.", parse=_optional_path)
    # "auto" is the first CUDA GPU if there is one, else the CPU.
    device: str = setting("auto", help="auto (GPU if any), cpu, cuda or cuda:N.")
    dtype: str | None = setting(None, help="float32, bfloat16, float16 or auto.", show_default="the checkpoint's")
    # Length of the input second and of the predicted future, s (docs/ARCHITECTURE.md: both 1 s).
    window_s: float = 1.0
    horizon_s: float = 1.0
    # Number of example trajectories drawn in example_trajectories.png.
    n_examples: int = 6
    # An existing, non-empty output_dir is refused without it (a served run resumes in its own folder).
    overwrite: bool = overwrite_setting(help="Replace the report files of an existing output dir.")
    # As data URIs.
    embed_videos: bool = setting(
        False, help="Put the gallery's mp4s into report.html (default: copies in clips/ beside it)."
    )

    def __post_init__(self) -> None:
        parse_fields(self)
        self._check_answer_source()
        if not self.split:
            raise PipelineError("--split must not be empty")
        if self.batch_size < 1:
            raise PipelineError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.num_samples < 1:
            raise PipelineError(f"--num-samples must be >= 1, got {self.num_samples}")
        if self.num_samples > 1 and self.predictions is not None:
            raise PipelineError("--num-samples > 1 needs --model or --server (a predictions file gives one answer)")
        if self.max_samples is not None and self.max_samples < 1:
            raise PipelineError(f"--max-samples must be >= 1, got {self.max_samples}")
        if self.window_s <= 0 or self.horizon_s <= 0:
            raise PipelineError(f"window_s and horizon_s must be > 0, got {self.window_s} and {self.horizon_s}")
        if self.n_examples < 0:
            raise PipelineError(f"n_examples must be >= 0, got {self.n_examples}")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")):
            raise PipelineError(f"--device: {self.device!r} is not auto, cpu or cuda[:N]")
        unknown = sorted(set(self.video) - {f.name for f in fields(VideoSettings)})
        if unknown and (self.model is not None or self.server is not None):
            raise PipelineError(f"video settings: unknown key(s) {', '.join(unknown)}")

    def _check_answer_source(self) -> None:
        """Exactly one answer source, with the options that go with it; the paths given exist."""
        if sum(x is not None for x in (self.model, self.predictions, self.server)) != 1:
            raise PipelineError(
                "give exactly one of --model (generate answers), --predictions (score a file) and --server (ask one)"
            )
        run_dir = self.training_run_dir()
        if self.server is not None and (run_dir is None or not run_dir.is_dir()):
            raise PipelineError(
                "--server needs --run-dir: the training output directory (train_config.json and processor) that"
                " sets the frames the server samples"
            )
        if self.adapter is not None and self.model is None:
            raise PipelineError("--adapter needs --model (a predictions file is scored without a model)")
        if self.save_predictions and self.model is None:
            raise PipelineError("--save-predictions needs --model (with --predictions the answers are already saved)")
        if self.adapter is not None and not self.adapter.is_dir():
            raise PipelineError(f"--adapter {self.adapter}: not a directory")
        if self.predictions is not None and not self.predictions.is_file():
            raise PipelineError(f"--predictions {self.predictions}: no such file")
        if not self.dataset.is_dir():
            raise PipelineError(f"--dataset {self.dataset}: no such directory")

    def training_run_dir(self) -> Path | None:
        """The training output directory behind the answers: `run_dir`, else with a server the served model's name
        when it is a local directory; None when neither."""
        served = Path(str(self.server.served_model)) if self.server is not None else None
        if self.run_dir is None and served is not None and served.is_dir():
            return served
        return self.run_dir

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON-ready values (`ResolvedRun.to_json` adds what the training run's files resolve)."""
        return to_json(self)  # a ServerSettings holds the key's variable name, never the key
