"""Checks of the segment columns that files from before record version 5 lack: the trajectories (`future_xyh`,
`history_xyh`) and the cameras (`cameras`, `videos`). Used by `segments_reader`; a missing column is null there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.contracts.answer import MAX_SPEED_MPS
from pipeline.contracts.record_checks import video_path_problem

# Trajectory columns: rows [x m, y m, heading rad].
TRAJECTORY_FIELDS = ("future_xyh", "history_xyh")
# Camera columns: lists of strings, one item per camera.
CAMERA_FIELDS = ("cameras", "videos")
# Longest trajectory span the settings allow, s (pipeline.contracts.targets): |x| and |y| stay within
# MAX_SPEED_MPS times it.
MAX_SPAN_S = 60.0
MAX_OFFSET_M = MAX_SPEED_MPS * MAX_SPAN_S
# A heading is wrapped to [-pi, pi] (with rounding slack).
_MAX_HEADING_RAD = np.pi + 1e-6


def json_problem(rec: dict[str, Any]) -> str | None:
    """Why a JSON record's optional trajectory/camera fields have the wrong shape, or None."""
    for key in TRAJECTORY_FIELDS:
        rows = rec.get(key)
        if rows is None:
            continue
        if not isinstance(rows, list) or not all(_is_xyh(r) for r in rows):
            return f"field {key!r} must be a list of [x, y, heading] rows"
    for key in CAMERA_FIELDS:
        items = rec.get(key)
        if items is not None and (not isinstance(items, list) or not all(isinstance(x, str) and x for x in items)):
            return f"field {key!r} must be a list of non-empty strings"
    return None


def _is_xyh(row: Any) -> bool:
    numbers = isinstance(row, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in row)
    return numbers and len(row) == 3


def batch_problem(table: pa.Table) -> tuple[int, str] | None:
    """(row, reason) of the first record of a batch whose trajectories are not finite [x, y, heading] rows within
    +-MAX_OFFSET_M m and +-pi rad, or whose `cameras` and `videos` differ in length or disagree with `camera` and
    `video`; None when all are fine (null columns pass)."""
    for name in TRAJECTORY_FIELDS:
        column = table.column(name)
        lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
        rows_flat = pc.list_flatten(column)
        widths = pc.list_value_length(rows_flat).to_numpy(zero_copy_only=False)
        if (widths != 3).any():
            return _row_of(lengths, int(np.argmax(widths != 3))), f"field {name!r} rows must have 3 values"
        values = pc.list_flatten(rows_flat).to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 3)
        bad_row = ~np.isfinite(values).all(axis=1)
        if bad_row.any():
            return _row_of(lengths, int(np.argmax(bad_row))), f"field {name!r} holds a non-finite value"
        far = (np.abs(values[:, :2]) > MAX_OFFSET_M).any(axis=1) | (np.abs(values[:, 2]) > _MAX_HEADING_RAD)
        if far.any():
            i = int(np.argmax(far))
            x, y, h = values[i]
            return _row_of(lengths, i), (
                f"field {name!r} holds [{x:g}, {y:g}, {h:g}], outside +-{MAX_OFFSET_M:g} m or +-pi rad"
            )
    n_cam = pc.list_value_length(table.column("cameras")).fill_null(-1).to_numpy(zero_copy_only=False)
    n_vid = pc.list_value_length(table.column("videos")).fill_null(-1).to_numpy(zero_copy_only=False)
    if (n_cam != n_vid).any():
        return int(np.argmax(n_cam != n_vid)), "fields 'cameras' and 'videos' differ in length"
    if (n_vid > 0).any():
        pairs = zip(table.column("video").to_pylist(), table.column("videos").to_pylist(), strict=True)
        for row, (video, videos) in enumerate(pairs):
            if videos and videos[0] != video:
                return row, "field 'videos' must start with the record's 'video'"
            problem = next(filter(None, map(video_path_problem, videos or [])), None)
            if problem:
                return row, f"field 'videos' {problem}"
    return None


def _row_of(lengths: np.ndarray, item: int) -> int:
    """The record holding flattened item `item` of a list column with per-record `lengths`."""
    return int(np.searchsorted(np.cumsum(lengths), item, side="right"))


__all__ = [
    "CAMERA_FIELDS",
    "MAX_OFFSET_M",
    "TRAJECTORY_FIELDS",
    "batch_problem",
    "json_problem",
]
