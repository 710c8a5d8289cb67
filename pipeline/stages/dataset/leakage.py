"""What leaks from train to test through the drives clips are cut from: a survey of the segments file's clips
(drive key, place in the drive, official split) and the leakage report of a build (docs/ARCHITECTURE.md).

The report counts the test clips that share a drive key with a train clip, and the test clips that are the next or
previous 20 s of a train clip. The second can be told only where the dataset publishes a clip's start within a
drive of its own (a drive id with an offset); with the published (platform, country, month, hour) grouping it
cannot, and the report says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.contracts.segments_reader import SegmentsFile

# Two clips of one drive whose starts are at most this far apart are neighbours: a 20-s clip plus 1 s of slack.
NEIGHBOUR_MAX_GAP_US = 21_000_000
_CANNOT_TELL = (
    "cannot be told: the drive key groups clips by {what}, and the dataset publishes no clip's place in its drive"
)


@dataclass
class ClipSurvey:
    """One entry per clip of a segments file, in first-seen order."""

    # (clips,) object: clip ids.
    clip_ids: np.ndarray
    # (clips,) object: drive keys, "" = none.
    drives: np.ndarray
    # (clips,) int64: start of the clip within its drive, µs; -1 = not published.
    offsets_us: np.ndarray
    # (clips,) object: the official split of the clip's first record ("" = none).
    splits: np.ndarray

    @property
    def all_have_drive(self) -> bool:
        return bool(len(self.drives)) and bool((self.drives != "").all())


def survey(source: SegmentsFile) -> ClipSurvey:
    """Read each clip's drive key, offset and official split from `source` (a checked pass over the file)."""
    seen: dict[str, tuple[str, int, str]] = {}
    for batch in source.batches():
        table = batch.table
        ids = table.column("clip_id").to_pylist()
        drives = table.column("drive").fill_null("").to_pylist()
        offsets = table.column("drive_offset_us").fill_null(-1).to_pylist()
        splits = table.column("split").fill_null("").to_pylist()
        for clip_id, drive, offset, split in zip(ids, drives, offsets, splits, strict=True):
            seen.setdefault(clip_id, (drive, offset, split))
    values = list(seen.values())
    return ClipSurvey(
        np.array(list(seen), dtype=object),
        np.array([v[0] for v in values], dtype=object),
        np.array([v[1] for v in values], dtype=np.int64),
        np.array([v[2] for v in values], dtype=object),
    )


def key_columns(drives: np.ndarray) -> str | None:
    """The columns the drive keys are made of ("platform_class, country, month, hour_of_day"); None without keys."""
    named = [d for d in drives.tolist() if d]
    if not named:
        return None
    return ", ".join(part.split("=", 1)[0] for part in named[0].split("|"))


def leakage_report(drives: np.ndarray, offsets_us: np.ndarray, is_test: np.ndarray) -> dict[str, Any]:
    """The leakage report of the kept clips.

    Args:
        drives: (clips,) drive keys, "" = none.
        offsets_us: (clips,) int64 starts within the drive, µs, -1 = unknown.
        is_test: (clips,) bool side of each clip.
    """
    test = np.flatnonzero(is_test)
    train_drives = set(drives[~is_test].tolist()) - {""}
    keyed = drives[test] != ""
    sharing = int(sum(d in train_drives for d in drives[test].tolist()))
    known = test[keyed & (offsets_us[test] >= 0)]
    report: dict[str, Any] = {
        "drive_key": key_columns(drives),
        "test_clips": len(test),
        "test_clips_without_drive_key": int((~keyed).sum()),
        "test_clips_sharing_drive_with_train": sharing,
        "test_clips_next_to_train": None,
        "test_clips_order_unknown": int(keyed.sum()) - len(known),
    }
    if not len(known):
        report["neighbours"] = _CANNOT_TELL.format(what=report["drive_key"] or "nothing (no clip has a drive key)")
        return report
    train = np.flatnonzero(~is_test & (offsets_us >= 0))
    by_drive: dict[str, list[int]] = {}
    for i in train.tolist():
        by_drive.setdefault(drives[i], []).append(int(offsets_us[i]))
    next_to = 0
    for i in known.tolist():
        starts = np.asarray(by_drive.get(drives[i], []), dtype=np.int64)
        next_to += bool(len(starts)) and bool((np.abs(starts - offsets_us[i]) <= NEIGHBOUR_MAX_GAP_US).any())
    report["test_clips_next_to_train"] = next_to
    report["neighbours"] = (
        f"told for {len(known)} test clip(s) whose start within their drive is published: a train clip of the same "
        f"drive starting at most {NEIGHBOUR_MAX_GAP_US / 1e6:g} s away"
    )
    return report


def leakage_text(report: dict[str, Any]) -> str:
    """The report in one sentence (log and dataset card)."""
    told = report["test_clips_next_to_train"]
    neighbours = f"{told} are the next or previous 20 s of a train clip" if told is not None else "neighbours "
    neighbours += f" ({report['neighbours']})" if told is not None else report["neighbours"]
    return (
        f"of {report['test_clips']} test clips, {report['test_clips_sharing_drive_with_train']} share a drive key "
        f"({report['drive_key'] or 'none'}) with a train clip ({report['test_clips_without_drive_key']} have no key); "
        f"{neighbours}"
    )


__all__ = ["NEIGHBOUR_MAX_GAP_US", "ClipSurvey", "key_columns", "leakage_report", "leakage_text", "survey"]
