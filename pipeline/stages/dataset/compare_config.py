"""`CompareConfig`: the options of `pipeline compare-builds` (light to import: the CLI reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.options import setting


@dataclass(frozen=True)
class CompareConfig:
    """Options of `pipeline compare-builds A B` (the two builds are its arguments)."""

    # Every clip id added, removed and moved, with both builds' provenance (`compare.Comparison.to_json`).
    json_path: Path | None = setting(
        None, help="Also write the comparison, every clip id, to this JSON file.", flags=("--json",)
    )
    # Clip ids printed per group (added, removed, each move); the counts are always complete.
    show: int = setting(10, help="Clip ids printed per group (0 = counts only).")

    def __post_init__(self) -> None:
        if self.json_path is not None:
            object.__setattr__(self, "json_path", Path(self.json_path))
        if self.show < 0:
            raise PipelineError(f"--show must be >= 0, got {self.show}")


__all__ = ["CompareConfig"]
