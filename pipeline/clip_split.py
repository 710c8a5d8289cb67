"""Which clips a dataset keeps and on which side of the train/test split each lands.

Every segment of a clip lands on the same side (overlapping windows share frames), so the test set never holds
frames seen in training. The order is a seeded permutation of the sorted clip ids, so it does not depend on the
order of the input records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.errors import PipelineError

# Official split of clip_index.parquet -> side of our split: only `train` clips are trained on; `val` and `test`
# clips both go to our test side.
OFFICIAL_SPLIT_MAP = {"train": "train", "val": "test", "test": "test"}


class _Split(Protocol):
    id: str
    clip_id: str
    split: str | None


def clip_order(clip_ids: list[str], seed: int) -> list[str]:
    """The clip ids in a seeded random order (a permutation of the sorted ids: independent of input order)."""
    ordered = sorted(set(clip_ids))
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in perm]


def select_whole_clips(counts: dict[str, int], order: list[str], max_samples: int) -> list[str]:
    """Clips taken in `order` until their segments reach `max_samples` (the last clip is taken whole)."""
    chosen, total = [], 0
    for clip in order:
        if total >= max_samples:
            break
        chosen.append(clip)
        total += counts[clip]
    return chosen


def split_clips_random(order: list[str], test_ratio: float) -> dict[str, str]:
    """clip id -> "train"/"test": the first round(test_ratio * clips) of the seeded order are test.

    With two clips or more, each side gets at least one clip.
    """
    n = len(order)
    n_test = round(test_ratio * n)
    n_test = min(max(n_test, 1), n - 1) if n >= 2 else 0
    return {clip: ("test" if i < n_test else "train") for i, clip in enumerate(order)}


def split_clips_official(records: list[_Split], path: Path) -> dict[str, str]:
    """clip id -> "train"/"test" from the records' official `split` (train -> train, val/test -> test).

    Raises:
        PipelineError: a record has no or an unknown split, or one clip has two splits.
    """
    sides: dict[str, str] = {}
    for rec in records:
        if rec.split is None:
            raise PipelineError(f"{path}: segment {rec.id!r} has no field 'split' (needed by --split-by official)")
        side = OFFICIAL_SPLIT_MAP.get(rec.split)
        if side is None:
            raise PipelineError(f"{path}: segment {rec.id!r} has unknown split {rec.split!r} (train/val/test)")
        if sides.setdefault(rec.clip_id, side) != side:
            raise PipelineError(f"{path}: clip {rec.clip_id!r} has segments in both train and test splits")
    return sides


__all__ = ["OFFICIAL_SPLIT_MAP", "clip_order", "select_whole_clips", "split_clips_official", "split_clips_random"]
