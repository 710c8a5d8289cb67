"""`resolve_run`: what an evaluation reads from the training run behind its answers before any work (the first step
of `pipeline.stages.evaluate.stage.run`): that run's directory and the video settings the answers are asked with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.contracts.run_config import VideoSettings, read_run_config
from pipeline.core.options import to_json
from pipeline.stages.evaluate.config import EvaluateConfig


@dataclass(frozen=True)
class ResolvedRun:
    """The training run an evaluation's answers come from, as far as its files tell (written to metrics.json)."""

    # Training output dir that sets the server's frames: --run-dir, else the served model's name when it is a
    # local directory (as with transformers serve); None when neither.
    run_dir: Path | None
    # The video input of a model or server (None with a predictions file: nothing is asked).
    video_settings: VideoSettings | None
    # Where their values came from: a train_config.json or "defaults", and the --video-* flags given.
    video_settings_source: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values (`video_settings` as a dict), the keys metrics.json's "settings" has for them."""
        return to_json(self)


def resolve_run(config: EvaluateConfig) -> ResolvedRun:
    """Read the training run's settings (train_config.json in --adapter, --run-dir, else in --model; else the
    training defaults) and lay the --video-* overrides over them.

    Raises:
        PipelineError: an unreadable train_config.json; video settings out of range (the message names the flag).
    """
    run_dir = config.training_run_dir()
    if config.model is None and config.server is None:
        return ResolvedRun(run_dir, None, None)
    values: dict[str, Any] = {}
    source = "defaults"
    for directory in (config.adapter, run_dir, Path(str(config.model)) if config.model else None):
        recorded = read_run_config(directory) if directory is not None else None
        if recorded is not None:
            settings, path = recorded
            values = dict(settings.get("video", {}))
            source = str(path)
            break
    given = {k: v for k, v in config.video.items() if v is not None}
    values |= given
    if given:
        flags = ", ".join("--video-" + key.replace("_", "-") for key in given)
        source += f"; {flags} from the command line"
    return ResolvedRun(run_dir, VideoSettings(**values), source)


__all__ = ["ResolvedRun", "resolve_run"]
