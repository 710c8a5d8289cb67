"""`ExportConfig`: the settings of `pipeline export` (light to import: the CLI reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.contracts.run_config import DEFAULT_MODEL, VideoSettings
from pipeline.core.errors import PipelineError
from pipeline.core.options import group, overwrite_setting, setting

FORMATS = ("qwen-vl-finetune", "llama-factory", "ms-swift")


@dataclass
class ExportConfig:
    """Settings of `pipeline export`."""

    dataset: Path = setting(Path("qwen_video_dataset"), help="Dataset directory from `pipeline build-dataset`.")
    # One folder per framework.
    output_dir: Path = setting(Path("qwen_video_exports"), help="Directory for the exports.")
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
        self.dataset = Path(self.dataset)
        self.output_dir = Path(self.output_dir)
        if self.format != "all" and self.format not in FORMATS:
            raise PipelineError(f"--format must be one of {', '.join(FORMATS)} or all, got {self.format!r}")
        if not self.name.isidentifier():
            raise PipelineError(f"dataset name must be a Python identifier, got {self.name!r}")

    @property
    def formats(self) -> tuple[str, ...]:
        return FORMATS if self.format == "all" else (self.format,)
