"""`EvaluateConfig`: the settings of `pipeline evaluate` (light to import: the CLI reads it)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import PipelineError
from pipeline.core.options import group, overwrite_setting, setting, to_json
from pipeline.model.inference import GenerationSettings
from pipeline.stages.evaluate.serving_client import ServerSettings


@dataclass
class EvaluateConfig:
    """Settings of one evaluation run (written to `metrics.json` with the results)."""

    # Stage-3 dataset directory (holds `{train,test}/` in the `save_to_disk` layout and `dataset_meta.json`).
    dataset: Path = setting(
        Path("qwen_video_dataset"), help="Dataset directory from `pipeline build-dataset`.", flags=("--dataset",)
    )
    # Created if missing: report.md, metrics.json, predictions.csv and the PNG plots.
    output_dir: Path = setting(Path("eval_report"), help="Directory for the report files.")
    # The train split must also exist (it defines the train-mean baseline and fallback).
    split: str = setting("test", help="Split to score.")
    # Exactly one of `model`, `predictions` and `server` is given.
    model: str | None = setting(None, help="Model directory or Hub id to generate answers with.")
    adapter: Path | None = setting(None, help="LoRA adapter directory applied on top of --model.")
    predictions: Path | None = setting(
        None, help='Score this JSONL of {"id", "text"} answers instead (no model loaded).'
    )
    # Ask an OpenAI-compatible server instead (`serving_client`); answers go to output_dir/predictions.jsonl.
    server: ServerSettings | None = group(ServerSettings, prefix="", optional=True)
    # Its train_config.json and processor set the server's frames; None = the served model's name when it is a
    # local directory (as with transformers serve: `training_run_dir`).
    run_dir: Path | None = setting(
        None, help="Training output dir whose settings set the served frames [--served-model]."
    )
    # Same format `predictions` reads.
    save_predictions: bool = setting(False, help="Write the answers to predictions.jsonl.")
    batch_size: int = setting(4, help="Samples per generation batch.")
    # `evaluate --clips` (`clip_selection`): a parquet with a clip_id column, or one id per line; None = every clip.
    clips: Path | None = setting(None, help="Score only these clips: parquet with clip_id, or one id per line.")
    # In split order; with `server`, about this many in whole clips spread over the split. None = all.
    max_samples: int | None = setting(None, help="Score only the first N samples.")
    generation: GenerationSettings = group(GenerationSettings, prefix="")
    # Overrides of the training run's video settings (train_config.json in --adapter, --run-dir, else in --model;
    # else the training defaults); laid over them by `resolved_run.resolve_run`.
    video: dict[str, Any] = group(VideoSettings, partial_default="the training run's, else {}")
    video_root: Path | None = setting(None, help="Segments moved since build-dataset.")
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
        self.dataset = Path(self.dataset)
        self.output_dir = Path(self.output_dir)
        self.adapter = Path(self.adapter) if self.adapter is not None else None
        self.predictions = Path(self.predictions) if self.predictions is not None else None
        self.run_dir = Path(self.run_dir) if self.run_dir is not None else None
        self.clips = Path(self.clips) if self.clips is not None else None
        self._check_answer_source()
        if not self.split:
            raise PipelineError("--split must not be empty")
        if self.batch_size < 1:
            raise PipelineError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.max_samples is not None and self.max_samples < 1:
            raise PipelineError(f"--max-samples must be >= 1, got {self.max_samples}")
        if isinstance(self.generation, dict):
            self.generation = GenerationSettings(**self.generation)
        if self.window_s <= 0 or self.horizon_s <= 0:
            raise PipelineError(f"window_s and horizon_s must be > 0, got {self.window_s} and {self.horizon_s}")
        if self.n_examples < 0:
            raise PipelineError(f"n_examples must be >= 0, got {self.n_examples}")
        self.video_root = Path(self.video_root) if self.video_root is not None else None
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
