"""The checks that every reader of segment records or of a built dataset applies, defined once: `build-dataset` on
the segments file, and `dataset_reader` (export, train, evaluate) on a built dataset's shards.

- A `video` path is relative, has no NUL byte, does not climb out with '..', and does not leave its root through
  a symlink (of the file or of a folder on its way): `first_bad_video`.
- Target values are finite and physically possible: speeds in [0, `MAX_SPEED_MPS`] m/s, curvatures within
  +-`MAX_CURVATURE_PER_M` 1/m (the answer parser's limits): `first_bad_target`.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.contracts.answer import MAX_CURVATURE_PER_M, MAX_SPEED_MPS
from pipeline.contracts.video_files import VideoFiles

# Physical range of a target column, by its unit: (low, high).
TARGET_RANGES = {"m/s": (0.0, MAX_SPEED_MPS), "1/m": (-MAX_CURVATURE_PER_M, MAX_CURVATURE_PER_M)}


def video_path_problem(video: str | None) -> str | None:
    """Why `video` cannot be a path inside the video root (None if it can): missing, empty, holding a NUL byte,
    absolute, or climbing out with '..'."""
    if not video:
        return "is missing"
    if "\x00" in video:
        return f"holds a NUL byte ({video!r})"
    if posixpath.isabs(video):
        return f"is an absolute path ({video!r}); it must be relative to the video root"
    normal = posixpath.normpath(video)
    if normal == ".." or normal.startswith("../"):
        return f"escapes the video root ({video!r})"
    return None


def first_bad_path(videos: Any) -> tuple[int, str] | None:
    """(row, problem) of the first path in an Arrow string array that `video_path_problem` refuses, else None."""
    import pyarrow.compute as pc

    suspicious = pc.fill_null(
        pc.or_(
            pc.or_(pc.starts_with(videos, "/"), pc.match_substring(videos, "..")),
            pc.or_(pc.match_substring(videos, "\x00"), pc.equal(pc.utf8_length(videos), 0)),
        ),
        True,
    )
    if not pc.any(suspicious).as_py():
        return None
    for row in np.flatnonzero(suspicious.to_numpy(zero_copy_only=False)):
        problem = video_path_problem(videos[int(row)].as_py())
        if problem:
            return int(row), problem
    return None


def first_bad_video(videos: Any, root: Path, files: VideoFiles) -> tuple[int, str] | None:
    """(row, problem) of the first video in an Arrow string array of paths relative to `root` that is not a path
    inside `root` (`first_bad_path`) or that leaves it through a symlink, else None. `files` caches the listings."""
    bad = first_bad_path(videos)
    if bad is not None:
        return bad
    outside = files.outside(str(root), videos)
    if not outside.any():
        return None
    row = int(np.argmax(outside))
    return row, f"resolves outside the video root {root} through a symlink ({videos[row].as_py()!r})"


def first_bad_target(values: np.ndarray, rows: np.ndarray, unit: str) -> tuple[int, str] | None:
    """(row, problem) of the first row holding a non-finite or out-of-range value, else None.

    Args:
        values: (items,) float64 target values, m/s or 1/m (nulls as NaN).
        rows: (items,) row of each value.
        unit: "m/s" (speeds) or "1/m" (curvatures), which picks the range (`TARGET_RANGES`).
    """
    finite = np.isfinite(values)
    if not finite.all():
        return int(rows[~finite].min()), "holds a non-finite value"
    low, high = TARGET_RANGES[unit]
    bad = (values < low) | (values > high)
    if not bad.any():
        return None
    row = int(rows[bad].min())
    value = values[bad & (rows == row)][0]
    return row, f"holds {value:g} {unit}, outside [{low:g}, {high:g}]"


__all__ = ["TARGET_RANGES", "first_bad_path", "first_bad_target", "first_bad_video", "video_path_problem"]
