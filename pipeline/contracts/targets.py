"""What a segment's targets and inputs are: `TargetSettings`, recorded in `segments.json` and in `dataset_meta.json`
under the key "targets" (a JSON object with exactly its field names), so that later stages read the same settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipeline.core.errors import PipelineError

# Key of the settings in segment_config.json, manifest.json's "config" and dataset_meta.json.
TARGETS_KEY = "targets"
# The segment stage's resolved config, beside segments.parquet (where build-dataset reads the settings).
SEGMENT_CONFIG_JSON = "segment_config.json"
# --targets values: next-horizon (speed, curvature) pairs, ego-frame trajectories, or both.
TARGET_KINDS = ("motion", "trajectory", "both")
# Longest history span, s (as the horizon's limit), so trajectories stay within the reader's bounds.
MAX_HISTORY_S = 60.0


@dataclass(frozen=True)
class TargetSettings:
    """The targets of every segment and the frames it shows. Times in s, rates in Hz."""

    # "motion" (speed and curvature), "trajectory" (future_xyh / history_xyh) or "both".
    targets: str = "motion"
    # Future horizon, s: N = round(horizon_s * target_hz) steps at (k + 1) / target_hz after the window's end.
    horizon_s: float = 1.0
    # Future steps per second, Hz (motion pairs and trajectory rows alike).
    target_hz: float = 30.0
    # History rows of the trajectory, oldest first, the last at the window's end (Alpamayo: 16).
    history_steps: int = 16
    # History rows per second, Hz (Alpamayo: 10).
    history_hz: float = 10.0
    # Camera feature names, in order; the first is the record's `video`.
    cameras: tuple[str, ...] = ()
    # Frames per camera, the last at the window's end; None = the whole window as a clip.
    frames_per_camera: int | None = None
    # Spacing of those frames, s.
    frame_spacing_s: float = 0.1

    def __post_init__(self) -> None:
        if self.targets not in TARGET_KINDS:
            raise PipelineError(f"--targets {self.targets!r}: expected one of {', '.join(TARGET_KINDS)}")
        if not 0 < self.horizon_s <= 60:
            raise PipelineError(f"--horizon {self.horizon_s}: must be in (0, 60] seconds")
        if not 1 <= self.target_hz <= 1000 or round(self.target_hz * self.horizon_s) < 1:
            raise PipelineError(f"--target-hz {self.target_hz}: must be in [1, 1000] target samples per second")
        if not 0 <= self.history_steps <= 1000:
            raise PipelineError(f"--history {self.history_steps}: must be in 0..1000 steps")
        if not 0.1 <= self.history_hz <= 1000:
            raise PipelineError(f"--history-hz {self.history_hz}: must be in [0.1, 1000] Hz")
        if self.history_steps > 1 and (self.history_steps - 1) / self.history_hz > MAX_HISTORY_S:
            raise PipelineError(
                f"--history {self.history_steps} at --history-hz {self.history_hz:g}: spans more than "
                f"{MAX_HISTORY_S:g} s"
            )
        if len(set(self.cameras)) != len(self.cameras):
            raise PipelineError(f"--cameras {','.join(self.cameras)}: a camera is named twice")
        if self.frames_per_camera is not None and not 1 <= self.frames_per_camera <= 64:
            raise PipelineError(f"--frames-per-camera {self.frames_per_camera}: must be in 1..64")
        if not 0 < self.frame_spacing_s <= 10:
            raise PipelineError(f"--frame-spacing {self.frame_spacing_s}: must be in (0, 10] seconds")

    @property
    def n_future(self) -> int:
        """Future steps N."""
        return int(round(self.target_hz * self.horizon_s))

    @property
    def motion(self) -> bool:
        """The segments carry (speed, curvature) targets."""
        return self.targets in ("motion", "both")

    @property
    def trajectory(self) -> bool:
        """The segments carry future_xyh / history_xyh."""
        return self.targets in ("trajectory", "both")

    def to_json(self) -> dict[str, Any]:
        """The settings as the "targets" JSON object (cameras as a list)."""
        data = asdict(self)
        data["cameras"] = list(self.cameras)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetSettings:
        """The settings of a "targets" JSON object. Raises PipelineError on a bad value, KeyError on a missing one."""
        return cls(**{**{name: data[name] for name in asdict(cls())}, "cameras": tuple(data["cameras"])})


__all__ = ["MAX_HISTORY_S", "SEGMENT_CONFIG_JSON", "TARGETS_KEY", "TARGET_KINDS", "TargetSettings"]
