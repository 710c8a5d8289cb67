"""`ExportConfig`: the settings of `pipeline export` (light to import: the CLI reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.contracts.run_config import DEFAULT_MODEL, VideoSettings
from pipeline.core.errors import PipelineError
from pipeline.core.options import group, overwrite_setting, parse_fields, setting, to_json

FORMATS = ("qwen-vl-finetune", "llama-factory", "ms-swift")


@dataclass(frozen=True)
class ExportConfig:
    """Settings of `pipeline export`."""

    dataset: Path = setting(
        Path("qwen_video_dataset"), help="Dataset directory from `pipeline build-dataset`.", parse=Path
    )
    # One folder per framework.
    output_dir: Path = setting(Path("qwen_video_exports"), help="Directory for the exports.", parse=Path)
    format: str = setting("all", help="qwen-vl-finetune, llama-factory, ms-swift or all.", flags=("--format",))
    # Replaced only once the new one is complete.
    overwrite: bool = overwrite_setting()
    # Prefix of the registered dataset names (`{name}_train`, `{name}_test`).
    name: str = "physicalai_av"
    # Hub id or directory.
    model: str = setting(DEFAULT_MODEL, help="Model the ready-to-run training files name.")
    # Frame sampling and pixel budget the exports' training files set (those of `pipeline train` by default).
    video: VideoSettings = group(VideoSettings)

    def __post_init__(self) -> None:
        parse_fields(self)
        if self.format != "all" and self.format not in FORMATS:
            raise PipelineError(f"--format must be one of {', '.join(FORMATS)} or all, got {self.format!r}")
        if not self.name.isidentifier():
            raise PipelineError(f"dataset name must be a Python identifier, got {self.name!r}")

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @property
    def formats(self) -> tuple[str, ...]:
        return FORMATS if self.format == "all" else (self.format,)
