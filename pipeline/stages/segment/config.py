"""Settings of the segment stage: `SegmentConfig` (light to import: the CLI reads it; the clip jobs of a run are
`pipeline.stages.segment.jobs`). No I/O."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.av import catalog
from pipeline.av.catalog import DEFAULT_CAMERA
from pipeline.contracts.targets import SEGMENT_CONFIG_JSON, TARGET_KINDS, TargetSettings
from pipeline.core.errors import PipelineError
from pipeline.core.options import derive, parse_fields, setting, to_json

if TYPE_CHECKING:
    from pipeline.av.video import EncodeSettings

EGOMOTION_FEATURE = "egomotion"
SEGMENTS_JSON = "segments.json"
SEGMENTS_PARQUET = "segments.parquet"
MANIFEST_JSON = "manifest.json"
CONFIG_JSON = SEGMENT_CONFIG_JSON
# Version of the per-clip record layout; a change makes a re-run redo clips (2: input fingerprints; 3: the signature
# names target_hz "target_hz", no longer "fps"; 4: every segment carries its clip's drive key, so clips cut before
# are cut again; 5: records carry future_xyh, history_xyh, cameras and videos).
_RECORD_VERSION = 5
# The target settings' defaults (one definition: pipeline.contracts.targets).
_TARGETS = TargetSettings()
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_SHARD = re.compile(r"^(\d+)/(\d+)$")


def parse_size(text: str) -> tuple[int, int] | None:
    """`"448x252"` → (448, 252); `"native"` → None (keep the source size). Raises PipelineError naming --size."""
    text = text.strip().lower()
    if text == "native":
        return None
    match = _SIZE.match(text)
    if match is None:
        raise PipelineError(f"--size {text!r}: expected WIDTHxHEIGHT (e.g. 448x252) or 'native'")
    return int(match.group(1)), int(match.group(2))


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` → (i, n) with 0 <= i < n. Raises PipelineError naming --shard."""
    match = _SHARD.match(text.strip())
    if match is None:
        raise PipelineError(f"--shard {text!r}: expected i/n, e.g. 0/4")
    i, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 0 <= i < n:
        raise PipelineError(f"--shard {text!r}: need n >= 1 and 0 <= i < n")
    return i, n


def _size(value: str | Sequence[int] | None) -> tuple[int, int] | None:
    """The `size` field from "448x252" / "native" (`parse_size`) or a (width, height) pair."""
    if isinstance(value, str):
        return parse_size(value)
    return None if value is None else (int(value[0]), int(value[1]))


def _shard(value: str | Sequence[int]) -> tuple[int, int]:
    """The `shard` field from "i/n" (`parse_shard`) or an (i, n) pair."""
    return parse_shard(value) if isinstance(value, str) else (int(value[0]), int(value[1]))


def _chunk_ids(value: Sequence[int | str]) -> tuple[int, ...]:
    """The `chunks` field from id specs as typed ("0-9", "3,5") or ids."""
    if any(isinstance(c, str) for c in value):
        value = catalog.parse_chunk_ids(value)
    return tuple(int(c) for c in value)


def _camera_list(value: str | Sequence[str]) -> tuple[str, ...]:
    """The `cameras` field from "a,b" (comma-separated feature names) or names."""
    items = value.split(",") if isinstance(value, str) else [n for v in value for n in str(v).split(",")]
    return tuple(n.strip() for n in items if n.strip())


def _zero_is_all(value: int | None) -> int | None:
    return None if value == 0 else value


@dataclass(frozen=True)
class SegmentConfig:
    """Settings of the segment stage."""

    # Holds features.csv, clip_index.parquet and the chunk zips.
    input_dir: Path = setting(
        Path("physical_ai_data"), help="Downloaded dataset (or synthetic repository).", parse=Path
    )
    output_dir: Path = setting(Path("qwen_video_segments"), help="Where video_segments/ and metadata/ go.", parse=Path)
    # After sharding; None (or 0) = all.
    max_clips: int | None = setting(
        5, help="Clips to process (after --shard); 0 = all.", cli_type=int, parse=_zero_is_all
    )
    # Empty = every chunk whose camera and egomotion zips are downloaded; the command line gives id specs.
    chunks: tuple[int, ...] = setting(
        (),
        help="Downloaded chunk ids (repeat, list or range 0-9); default all.",
        flags=("--chunk", "--chunks"),
        cli_type=list[str] | None,
        cli_default=None,
        parse=_chunk_ids,
    )
    # Only clips of this official split (train / val / test); None = all.
    split: str | None = None
    # From features.csv.
    camera: str = setting(DEFAULT_CAMERA, help="Camera feature name.")
    # Several camera features, in order (the first gives `camera` and `video`); () = just `camera`.
    cameras: tuple[str, ...] = setting(
        (),
        help="Comma-separated camera feature names, cut on the same windows (the first is --camera).",
        cli_type=str,
        cli_default="",
        show_default=False,
        parse=_camera_list,
        dump=list,
    )
    window_s: float = setting(1.0, help="Segment length, s.", flags=("--window",))
    stride_s: float = setting(1.0, help="Segment start step, s (< window: overlap).", flags=("--stride",))
    # Future horizon of the targets, s; a segment exists only if this much video follows it.
    horizon_s: float = setting(_TARGETS.horizon_s, help="Future horizon of the targets, s.", flags=("--horizon",))
    # Width x height, px (even); None keeps the source size. The command line gives "448x252" or "native".
    size: tuple[int, int] | None = setting(
        (448, 252),
        help="Output WIDTHxHEIGHT, or 'native'.",
        flags=("--size",),
        cli_type=str,
        cli_default="448x252",
        parse=_size,
        dump=lambda size: list(size) if size else "native",
    )
    # n = round(target_hz * horizon_s) (velocity, curvature) pairs per segment.
    target_hz: float = setting(
        30.0,
        help="Target samples per second (30 pairs for 1 s); --fps is the original scripts' name.",
        flags=("--target-hz", "--target_hz", "--fps"),
    )
    # Which targets the segments carry (pipeline.contracts.targets.TARGET_KINDS).
    target_kind: str = setting(
        _TARGETS.targets,
        help=f"Targets: {', '.join(TARGET_KINDS)} (trajectory: future x, y, heading in the ego frame).",
        flags=("--targets",),
    )
    # Trajectory history rows (the last at the window's end).
    history_steps: int = setting(
        _TARGETS.history_steps, help="Trajectory history steps (the last is the window's end).", flags=("--history",)
    )
    # Trajectory history rate, Hz.
    history_hz: float = setting(_TARGETS.history_hz, help="Trajectory history steps per second.")
    # Frames per camera, the last nearest the window's end (None: the whole window as a clip).
    frames_per_camera: int | None = setting(
        None,
        help="Frames per camera nearest end - (N-1-j) * --frame-spacing (Alpamayo: 4); 0 = the whole window.",
        cli_type=int,
        cli_default=0,
        parse=_zero_is_all,
    )
    # Spacing of those frames, s.
    frame_spacing_s: float = setting(
        _TARGETS.frame_spacing_s, help="Spacing of --frames-per-camera frames, s.", flags=("--frame-spacing",)
    )
    workers: int = setting(1, help="Processes over clips.")
    # (i, n) of deterministic, disjoint shards of the clip list; the command line gives "i/n".
    shard: tuple[int, int] = setting(
        (0, 1),
        help="i/n: process the i-th of n disjoint clip shards.",
        cli_type=str,
        cli_default="0/1",
        parse=_shard,
        dump=lambda shard: f"{shard[0]}/{shard[1]}",
    )
    # libx264 preset; ultrafast keeps the cut near the decode-only floor (see benchmarks/segment_bench.py).
    preset: str = "ultrafast"
    # libx264 constant rate factor.
    crf: int = 23
    # Faster (docs/RESULTS.md); frames differ slightly from a full decode.
    fast_decode: bool = setting(False, help="Skip H.264 deblocking when decoding (~15% faster).")
    # Changed inputs always re-cut.
    retry_skipped: bool = setting(
        False, help="Cut clips an earlier run skipped again, even if their inputs did not change."
    )

    def __post_init__(self) -> None:
        parse_fields(self)
        if self.cameras and self.camera != self.cameras[0]:
            if self.camera != DEFAULT_CAMERA:
                raise PipelineError(f"--camera {self.camera} and --cameras {','.join(self.cameras)}: give one")
            derive(self, camera=self.cameras[0])
        if self.max_clips is not None and self.max_clips < 0:
            raise PipelineError(f"--max-clips {self.max_clips}: must be >= 0 (0 = all)")
        if not 0 < self.window_s <= 60:
            raise PipelineError(f"--window {self.window_s}: must be in (0, 60] seconds")
        if not 0 < self.stride_s <= 60:
            raise PipelineError(f"--stride {self.stride_s}: must be in (0, 60] seconds")
        self.target_settings()  # validates the target settings
        if self.size is not None:
            w, h = self.size
            if not (16 <= w <= 8192 and 16 <= h <= 8192) or w % 2 or h % 2:
                raise PipelineError(f"--size {w}x{h}: width and height must be even and in 16..8192")
        if self.workers < 1:
            raise PipelineError(f"--workers {self.workers}: must be >= 1")
        if self.split is not None and self.split not in catalog.SPLITS:
            raise PipelineError(f"--split {self.split!r}: expected one of {', '.join(catalog.SPLITS)}")
        i, n = self.shard
        if n < 1 or not 0 <= i < n:
            raise PipelineError(f"--shard {i}/{n}: need n >= 1 and 0 <= i < n")
        if not 0 <= self.crf <= 51:
            raise PipelineError(f"crf {self.crf}: must be in 0..51")

    def target_settings(self) -> TargetSettings:
        """The segments' target settings (recorded beside them under "targets"). Raises PipelineError."""
        return TargetSettings(
            targets=self.target_kind,
            horizon_s=self.horizon_s,
            target_hz=self.target_hz,
            history_steps=self.history_steps,
            history_hz=self.history_hz,
            cameras=self.camera_names,
            frames_per_camera=self.frames_per_camera,
            frame_spacing_s=self.frame_spacing_s,
        )

    @property
    def camera_names(self) -> tuple[str, ...]:
        """Every camera cut, in order (the first is `camera`)."""
        return self.cameras or (self.camera,)

    @property
    def n_targets(self) -> int:
        """Target pairs per segment."""
        return int(round(self.target_hz * self.horizon_s))

    def encode_settings(self) -> EncodeSettings:
        from pipeline.av.video import EncodeSettings  # PyAV: the stage needs it, the CLI's options do not

        # Several workers: one decoder thread each (they already fill the cores); one worker: libavcodec's choice.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        decode_threads = 0 if self.workers == 1 else max(1, cores // self.workers)
        return EncodeSettings(
            size=self.size,
            preset=self.preset,
            crf=self.crf,
            decode_threads=decode_threads,
            skip_loop_filter=self.fast_decode,
        )

    def signature(self) -> dict[str, Any]:
        """Everything a clip's outputs depend on (JSON-normalised): a clip cut with another signature is redone."""
        signature = {
            "version": _RECORD_VERSION,
            "camera": self.camera,
            "cameras": list(self.camera_names),
            "window_s": self.window_s,
            "stride_s": self.stride_s,
            "horizon_s": self.horizon_s,
            "size": list(self.size) if self.size else "native",
            "target_hz": self.target_hz,
            "targets": self.target_kind,
            "history": [self.history_steps, self.history_hz],
            "frames": [self.frames_per_camera, self.frame_spacing_s],
            "encode": {k: v for k, v in asdict(self.encode_settings()).items() if k != "decode_threads"},
        }
        return json.loads(json.dumps(signature))

    def to_json(self) -> dict[str, Any]:
        return to_json(self)


__all__ = [
    "CONFIG_JSON",
    "DEFAULT_CAMERA",
    "EGOMOTION_FEATURE",
    "MANIFEST_JSON",
    "SEGMENTS_JSON",
    "SEGMENTS_PARQUET",
    "SegmentConfig",
    "parse_shard",
    "parse_size",
]
