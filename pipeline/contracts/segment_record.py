"""One segment of the segment stage's output: `SegmentRecord`, the single declaration of the columns of
`segments.parquet` / `segments.json` and of the clip records' `segments` lists (docs/ARCHITECTURE.md).

The Arrow schema, the JSON form and the columns `build-dataset` reads are all derived from the dataclass fields, in
field order.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

# Field metadata key: the column is read (and checked) by `build-dataset`.
_READ = "read"
# Field metadata key: the unit of a number or of a list's items.
_UNIT = "unit"
# Field metadata key: `build-dataset` reads the column where a file has it (older files lack it).
_OPTIONAL = "optional"


def _column(read: bool = False, unit: str | None = None, optional: bool = False) -> Any:
    return field(metadata={_READ: read, _UNIT: unit, _OPTIONAL: optional})


@dataclass(frozen=True)
class SegmentRecord:
    """One segment: a `[start_us, end_us)` window of a clip, its mp4 and its targets. Times are int64 µs on the
    clip timeline; n = target_hz * horizon_s values per target list."""

    # "{clip_id}_{segment_index:02d}".
    id: str = _column(read=True)
    # UUID of the source clip.
    clip_id: str = _column(read=True)
    # Chunk id.
    chunk: int = _column(read=True)
    # The clip's official split from clip_index.parquet (train/val/test); optional to the reader.
    split: str = _column(read=True, optional=True)
    # Drive key from metadata/data_collection.parquet (pipeline.av.drives); "" when the clip has none.
    drive: str = _column(read=True, optional=True)
    # Start of the clip within its drive, µs, where the dataset publishes it; -1 when it does not.
    drive_offset_us: int = _column(read=True, unit="us", optional=True)
    # Camera feature name.
    camera: str = _column()
    # 0-based index of the window in the clip.
    segment_index: int = _column(read=True)
    # The window's start, µs.
    start_us: int = _column(read=True, unit="us")
    # The window's end (exclusive), µs.
    end_us: int = _column(read=True, unit="us")
    # mp4 path relative to the stage's output_dir.
    video: str = _column(read=True)
    # Frames in the mp4.
    frame_count: int = _column()
    # Source timestamp of the first frame written, µs.
    first_frame_us: int = _column(unit="us")
    # Source timestamp of the last frame written, µs.
    last_frame_us: int = _column(unit="us")
    # Frame rate measured from the frame timestamps, Hz.
    fps: float = _column(unit="Hz")
    # Width of the written mp4, pixels.
    width: int = _column(unit="px")
    # Height of the written mp4, pixels.
    height: int = _column(unit="px")
    # (n,) speeds over the next horizon, m/s (the labels).
    velocity: list[float] = _column(read=True, unit="m/s")
    # (n,) curvatures at the same times, 1/m, positive = left turn.
    curvature: list[float] = _column(read=True, unit="1/m")
    # (n,) speeds over the input window (the last is "now"), m/s.
    history_velocity: list[float] = _column(read=True, unit="m/s")
    # (n,) curvatures at the history times, 1/m.
    history_curvature: list[float] = _column(read=True, unit="1/m")
    # Mean of history_velocity, m/s.
    speed_mean_mps: float = _column(unit="m/s")
    # Last of history_velocity ("now"), m/s.
    speed_last_mps: float = _column(unit="m/s")
    # Mean of history_curvature, 1/m.
    curvature_mean: float = _column(unit="1/m")
    # Last of history_curvature, 1/m.
    curvature_last: float = _column(unit="1/m")
    # (N, 3) rows [x m, y m, heading rad] at (k + 1) / target_hz after end_us, in the ego frame at end_us (x forward,
    # y left, heading counter-clockwise from x); empty when the targets are "motion" only.
    future_xyh: list[list[float]] = _column(read=True, unit="m, m, rad", optional=True)
    # (H, 3) rows of the same kind at end_us - (H - 1 - k) / history_hz, oldest first (the last is end_us itself).
    history_xyh: list[list[float]] = _column(read=True, unit="m, m, rad", optional=True)
    # Camera feature names, in the order given; the first is `camera`.
    cameras: list[str] = _column(read=True, optional=True)
    # mp4 paths relative to the stage's output_dir, one per camera in `cameras` order; the first is `video`.
    videos: list[str] = _column(read=True, optional=True)

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object, keys in field order."""
        return {name: getattr(self, name) for name in COLUMNS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentRecord:
        """The record of a JSON object with every field (extra keys are ignored). Raises KeyError on a missing one."""
        return cls(**{name: data[name] for name in COLUMNS})


# Column names, in field order.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SegmentRecord))
# Python type of each column: str, int, float or list[float].
COLUMN_TYPES: dict[str, Any] = typing.get_type_hints(SegmentRecord)
# Columns `build-dataset` reads, in field order.
READ_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SegmentRecord) if f.metadata[_READ])
# Read columns a segments file may lack (files from before they were added), in field order.
OPTIONAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SegmentRecord) if f.metadata[_OPTIONAL])
# Unit of each column that has one ("m/s", "1/m", "us", "Hz", "px").
UNITS: dict[str, str] = {f.name: f.metadata[_UNIT] for f in fields(SegmentRecord) if f.metadata[_UNIT]}


def arrow_schema(columns: tuple[str, ...] = COLUMNS) -> pa.Schema:
    """The Arrow schema of `columns` (default all, in field order): string, int64, float64, list<float64>,
    list<list<float64>>, list<string>."""
    import pyarrow as pa  # loaded only where a schema is needed: the clip workers build records without it

    types = {
        str: pa.string(),
        int: pa.int64(),
        float: pa.float64(),
        list[float]: pa.list_(pa.float64()),
        list[list[float]]: pa.list_(pa.list_(pa.float64())),
        list[str]: pa.list_(pa.string()),
    }
    return pa.schema([pa.field(name, types[COLUMN_TYPES[name]]) for name in columns])


__all__ = ["COLUMNS", "COLUMN_TYPES", "OPTIONAL_COLUMNS", "READ_COLUMNS", "UNITS", "SegmentRecord", "arrow_schema"]
