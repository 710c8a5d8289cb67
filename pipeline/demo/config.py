"""`DemoConfig`: the settings of `pipeline demo` (light to import: the CLI reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import PipelineError
from pipeline.core.options import parse_fields, setting

if TYPE_CHECKING:
    from pipeline.demo.profiles import DemoProfile


@dataclass(frozen=True)
class DemoConfig:
    """Options of `pipeline demo`."""

    workdir: Path = setting(Path("demo_workdir"), help="Where every stage writes.", parse=Path)
    quick: bool = setting(False, help="CI size: a few clips, a few steps (< 2 min).")
    keep: bool = setting(False, help="Keep the served repo and every stage's output, not only the report.")
    seed: int = setting(0, help="Seed of data, split, model init and training.")
    family: str = setting("qwen3_vl", help="Tiny model family: qwen3_vl, qwen2_5_vl, qwen3_5 or internvl.")
    history: bool = setting(
        False, help="Put the input second's measured motion in the prompt.", flags=("--history/--no-history",)
    )
    profile_name: str = setting(
        "default",
        help="default: one front camera, next second's speed and curvature; alpamayo: Alpamayo 1's 4 cameras x 4 "
        "frames, 1.6 s of history, 6.4 s of positions at 10 Hz.",
        flags=("--profile",),
    )

    def __post_init__(self) -> None:
        from pipeline.model.families import family_named  # the command line's help needs neither it nor profiles

        parse_fields(self)
        family_named(self.family)
        if self.profile_name not in ("default", "alpamayo"):
            raise PipelineError(f"--profile {self.profile_name!r}: expected default or alpamayo")

    @property
    def profile(self) -> DemoProfile:
        from pipeline.demo.profiles import PROFILES

        if self.profile_name == "alpamayo":
            return PROFILES["alpamayo-quick" if self.quick else "alpamayo"]
        return PROFILES["quick" if self.quick else "default"]

    def path(self, name: str) -> Path:
        return self.workdir / name
