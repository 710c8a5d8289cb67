"""`DatasetConfig`: the settings of `pipeline build-dataset` (light to import: the CLI reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.core.errors import PipelineError
from pipeline.core.options import overwrite_setting, parse_fields, setting, to_json


def _whole_number(value: float) -> float:
    """`value` as an int where it is a valid one (30.0 -> 30); anything else is left for `__post_init__` to refuse."""
    return int(value) if value == int(value) and value >= 1 else value


@dataclass(frozen=True)
class DatasetConfig:
    """Settings of `pipeline build-dataset`."""

    # Its parent's parent is the segments directory, the root of the records' video paths.
    segments_path: Path = setting(
        Path("qwen_video_segments/metadata/segments.parquet"),
        help="segments.parquet (or segments.json) written by `pipeline segment`.",
        parse=Path,
    )
    # Receives train/, test/, dataset_meta.json, README.md and the examples.
    output_dir: Path = setting(Path("qwen_video_dataset"), help="Dataset directory to write.", parse=Path)
    # Clips, not segments; strictly between 0 and 1.
    test_ratio: float = setting(0.1, help="Fraction of clips (drives) held out (--split-by clip, drive).")
    # Must equal the length of the segments' target lists; `target_hz` in dataset_meta.json.
    target_hz: int = setting(
        30,
        help="Targets per second; must match the segments file. --fps is the original scripts' name.",
        flags=("--target-hz", "--target_hz", "--fps"),
        parse=_whole_number,
    )
    # Whole clips in keyed-hash order until the count is reached.
    max_samples: int | None = setting(None, help="Keep about this many segments, whole clips only.")
    # Replaced only once the new one is complete.
    overwrite: bool = overwrite_setting()
    # Key of the clip hashes (split side and --max-samples order).
    seed: int = setting(42, help="Seed of the clip split and selection.")
    # "clip": keyed hash of the clip id; "drive": of the clip's drive key (no drive on both sides); "official": the
    # segments' `split` field (train -> train, val/test -> test); "auto": drive when every record has a drive key.
    split_by: Literal["auto", "clip", "drive", "official"] = setting(
        "auto", help="auto (drive if every record has a drive key, else clip), clip, drive or official (clip_index)."
    )
    # Parquet with a clip_id column (NVIDIA's evaluation list) or one id per line: test whatever the split.
    test_clips: Path | None = setting(None, help="Clips held out for test: parquet with clip_id, or one id per line.")
    # Else the other clips of the --test-clips clips' drives go to test too.
    allow_drive_neighbours: bool = setting(False, help="Let other clips of the --test-clips drives go to train.")
    # Else an empty train or test side is an error.
    allow_empty_split: bool = setting(False, help="Write the dataset even if one side gets no clip.")
    # The input second's (velocity, curvature) pairs in the user prompt.
    history: bool = setting(
        False, help="Put the input second's motion in the prompt.", flags=("--history/--no-history",)
    )
    # None = DEFAULT_SYSTEM_PROMPT.
    system_prompt: str | None = setting(None, help="Override the system prompt.")
    # None = default_prompt(target_hz).
    prompt: str | None = setting(None, help="Override the user instruction.")
    # Instead of being skipped and counted.
    strict: bool = setting(False, help="A missing segment video is an error.")
    # By row group; a JSON file is read by one process.
    num_proc: int = setting(1, help="Processes writing rows (parquet input).")
    # MB = 1e6 bytes; training streams shards in parallel dataloader workers.
    max_shard_mb: float = setting(500.0, help="Largest Arrow shard of a split, MB.")

    def __post_init__(self) -> None:
        parse_fields(self)
        if not (isinstance(self.test_ratio, int | float) and 0.0 < float(self.test_ratio) < 1.0):
            raise PipelineError(f"--test-ratio must be strictly between 0 and 1, got {self.test_ratio}")
        if int(self.target_hz) != self.target_hz or self.target_hz < 1:
            raise PipelineError(
                f"--target-hz must be a positive whole number of targets per second, got {self.target_hz}"
            )
        if self.max_samples is not None and self.max_samples < 1:
            raise PipelineError(f"--max-samples must be at least 1, got {self.max_samples}")
        if self.split_by not in ("auto", "clip", "drive", "official"):
            raise PipelineError(f"--split-by must be auto, clip, drive or official, got {self.split_by!r}")
        if self.system_prompt is not None and not self.system_prompt.strip():
            raise PipelineError("--system-prompt must not be empty")
        if self.prompt is not None and not self.prompt.strip():
            raise PipelineError("--prompt must not be empty")
        if self.num_proc < 1:
            raise PipelineError(f"--num-proc must be at least 1, got {self.num_proc}")
        if not self.max_shard_mb > 0:
            raise PipelineError(f"--max-shard-mb must be positive, got {self.max_shard_mb}")

    @property
    def video_root(self) -> Path:
        """Absolute segments directory: the records' `video` paths are relative to it."""
        parent = self.segments_path.resolve().parent
        return parent.parent if parent.name == "metadata" else parent

    def to_json(self) -> dict[str, Any]:
        return to_json(self)
