"""The evaluation's output folder: refused when it holds anything, unless `--overwrite` (or, with `--server`, it is
an earlier served run of the same folder, which resumes); and checked writable before any work. Evaluate then
replaces only its own files (the gallery's copies in `clips/` are listed in `clips/.evaluate.json`)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.atomic import temp_sibling, write_json
from pipeline.core.errors import PipelineError
from pipeline.stages.evaluate.config import EvaluateConfig

# Inside clips/: the mp4 names evaluate copied there, so that a later run removes only those.
CLIPS_LIST = ".evaluate.json"


def check_output_dir(config: EvaluateConfig) -> None:
    """Refuse an output folder evaluate may not write into (one line), before the model or the dataset is read."""
    from pipeline.stages.evaluate.serving_client import RUN_FILE

    out = config.output_dir
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--output-dir is a file, not a directory: {out}")
    resumes = config.server is not None and (out / RUN_FILE).is_file()
    if out.is_dir() and any(out.iterdir()) and not (config.overwrite or resumes):
        raise PipelineError(f"output directory exists: {out} (pass --overwrite to replace its report files)")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = temp_sibling(out / "write_probe")
        probe.touch()
        probe.unlink()
        if made:  # a run that fails later leaves no folder behind
            out.rmdir()
    except OSError as err:
        raise PipelineError(f"--output-dir {out}: cannot write there ({err.strerror or err})") from None


def replace_clips(clips: Path, kept: set[str]) -> None:
    """Remove the mp4s an earlier evaluation copied into `clips` that this one did not; list this one's."""
    listed = clips / CLIPS_LIST
    try:
        earlier = set(json.loads(listed.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        earlier = set()
    for name in earlier - kept:
        if Path(name).name == name and name.endswith(".mp4"):
            (clips / name).unlink(missing_ok=True)
    if kept or clips.is_dir():
        write_json(listed, sorted(kept))


__all__ = ["CLIPS_LIST", "check_output_dir", "replace_clips"]
