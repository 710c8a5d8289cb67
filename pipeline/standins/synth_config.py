"""What a synthetic repository is made of: `SynthConfig` (checked when made; light to import: the CLI reads it), the
dataset's camera geometry and the real `features.csv` shipped as package data. The clip and repository records
(`SynthClip`, `SynthResult`) are `pipeline.standins.repo`'s, beside `write_repo`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.av.catalog import DEFAULT_CAMERA, Feature, parse_features_csv
from pipeline.core.errors import PipelineError
from pipeline.core.options import derive, parse_fields, setting, to_json

EGOMOTION_FEATURE = "egomotion"
EGOMOTION_COLUMNS = (
    "timestamp",
    "qx",
    "qy",
    "qz",
    "qw",
    "x",
    "y",
    "z",
    "vx",
    "vy",
    "vz",
    "ax",
    "ay",
    "az",
    "curvature",
)
# Mounting yaw (deg, left positive) and horizontal field of view (deg) of each camera of the dataset.
CAMERA_GEOMETRY = {
    "camera_front_wide_120fov": (0.0, 120.0),
    "camera_front_tele_30fov": (0.0, 30.0),
    "camera_cross_left_120fov": (75.0, 120.0),
    "camera_cross_right_120fov": (-75.0, 120.0),
    "camera_rear_left_70fov": (140.0, 70.0),
    "camera_rear_right_70fov": (-140.0, 70.0),
    "camera_rear_tele_30fov": (180.0, 30.0),
}


def packaged_features_csv() -> str:
    """Text of the real `features.csv`, shipped as package data (`pipeline/standins/data/features.csv`)."""
    from importlib import resources  # only a synthetic repository reads it, not the command line

    return resources.files("pipeline.standins").joinpath("data/features.csv").read_text(encoding="utf-8")


def _wxh(size: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """(width, height) from "1920x1080"."""
    if not isinstance(size, str):
        return size
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise PipelineError(f"--size {size}: expected WxH, e.g. 1920x1080") from None
    return width, height


@dataclass(frozen=True)
class SynthConfig:
    """What `write_repo` generates."""

    output_dir: Path = setting(
        Path("synthetic_physical_ai_av"),
        help="Repository directory to create.",
        cli_type=str,
        cli_default="synthetic_physical_ai_av",
        parse=Path,
    )
    n_chunks: int = setting(1, help="Number of chunks.", flags=("--chunks", "--n-chunks", "--n_chunks"))
    clips_per_chunk: int = setting(3, help="Clips in each chunk.")
    # Chunks are first_chunk .. first_chunk + n_chunks - 1.
    first_chunk: int = setting(0, help="Id of the first chunk.")
    # "WxH" sets width and height (then it is None).
    size: str | tuple[int, int] | None = setting(
        None, help="Video size WxH, e.g. 1920x1080 (overrides --width/--height).", cli_type=str | None, parse=_wxh
    )
    width: int = setting(256, help="Video width, px (even, >= 128).")  # 1920 for benchmarks
    height: int = setting(144, help="Video height, px (even, >= 72).")
    # Frames cover [0, duration_s).
    duration_s: float = setting(20.0, help="Clip length, s.", flags=("--duration", "--duration-s", "--duration_s"))
    fps: float = setting(30.0, help="Video frame rate.")  # nominal
    # Everything (clip ids, trajectories, textures, jitter) is a function of the seed.
    seed: int = setting(0, help="Seed: same seed and flags give byte-identical files.")
    # Names from features.csv.
    cameras: tuple[str, ...] = setting(
        (DEFAULT_CAMERA,),
        help="Camera feature(s) to render (repeatable).",
        flags=("--camera", "--cameras"),
        cli_type=list[str] | None,
        cli_default=None,
        show_default=False,
        parse=tuple,
    )
    egomotion_hz: float = 100.0  # nominal egomotion rate; spacing jitters and sometimes drops to ~67 Hz
    crf: int = 23  # libx264 constant rate factor
    preset: str = "veryfast"  # libx264 preset
    gop: int = 30  # keyframe interval, frames
    # Tests read the code back; off for learning experiments, where a model could read the time in the clip from it.
    frame_code: bool = setting(
        True,
        help="Stamp each frame's index in its top-left corner (for checks).",
        flags=("--frame-code/--no-frame-code",),
    )
    # The old one is replaced only once the new one is complete.
    overwrite: bool = setting(False, help="Replace an existing --output-dir.", flags=("--overwrite", "--force"))

    def __post_init__(self) -> None:
        parse_fields(self)
        if self.size is not None:
            derive(self, width=self.size[0], height=self.size[1], size=None)
        if self.n_chunks < 1 or self.clips_per_chunk < 1:
            raise PipelineError(
                f"--chunks and --clips-per-chunk must be >= 1, got {self.n_chunks}, {self.clips_per_chunk}"
            )
        if self.first_chunk < 0 or self.first_chunk + self.n_chunks > 10_000:
            raise PipelineError(f"--first-chunk {self.first_chunk}: chunk ids must lie in 0..9999")
        if self.width < 128 or self.height < 72 or self.width % 2 or self.height % 2:
            raise PipelineError(f"--size {self.width}x{self.height}: width and height must be even, >= 128x72")
        if not 0 < self.duration_s <= 600:
            raise PipelineError(f"--duration {self.duration_s}: must be in (0, 600] seconds")
        if not 1 <= self.fps <= 240:
            raise PipelineError(f"--fps {self.fps}: must be in [1, 240]")
        from pipeline.standins.frame_code import MAX_FRAME_INDEX  # here: frame_code loads numpy, the CLI this module

        if round(self.duration_s * self.fps) > MAX_FRAME_INDEX + 1:
            raise PipelineError(f"--duration {self.duration_s} at --fps {self.fps}: over {MAX_FRAME_INDEX + 1} frames")
        if round(self.duration_s * self.fps) < 1:
            raise PipelineError(f"--duration {self.duration_s} at --fps {self.fps}: no frames")
        if not 10 <= self.egomotion_hz <= 1000:
            raise PipelineError(f"egomotion_hz {self.egomotion_hz}: must be in [10, 1000]")
        if not self.cameras:
            raise PipelineError("--camera: at least one camera is needed")
        unknown = [c for c in self.cameras if c not in CAMERA_GEOMETRY]
        if unknown:
            raise PipelineError(f"--camera: unknown camera(s) {unknown}; valid: {', '.join(CAMERA_GEOMETRY)}")
        if not 0 <= self.crf <= 51 or self.gop < 1:
            raise PipelineError(f"crf {self.crf} / gop {self.gop}: crf must be in 0..51 and gop >= 1")

    @property
    def chunk_ids(self) -> list[int]:
        return list(range(self.first_chunk, self.first_chunk + self.n_chunks))

    @property
    def n_frames(self) -> int:
        return round(self.duration_s * self.fps)

    def to_json(self) -> dict:
        return to_json(self)


def repo_features() -> dict[str, Feature]:
    return parse_features_csv(packaged_features_csv(), source="pipeline/standins/data/features.csv")


__all__ = [
    "CAMERA_GEOMETRY",
    "DEFAULT_CAMERA",
    "EGOMOTION_COLUMNS",
    "EGOMOTION_FEATURE",
    "SynthConfig",
    "packaged_features_csv",
    "repo_features",
]
