"""Which clips a dataset keeps and on which side of the train/test split each lands. Pure: strings and numpy.

Every segment of a clip lands on the same side (overlapping windows share frames), so the test set never holds
frames seen in training. With `--split-by clip` a clip's side is a pure function of (seed, clip id): a keyed
BLAKE2b hash of the id mapped to [0, 1), test when below the test ratio. Adding clips (more chunks) never moves a
clip already placed, so a model trained on one build is never scored on its own training clips by a later, larger
build. `--max-samples` takes whole clips in the order of a second keyed hash (independent of the side), so a
smaller build is a subset of a larger one and its test clips are test clips of the larger one.

With `--split-by drive` the side is the same keyed hash of the clip's drive key (`pipeline.av.drives`), so every
clip of a drive lands on one side, and adding clips moves none either. Clips held out by name (`--test-clips`),
and by default the other clips of their drives, go to test whatever the method.
"""

from __future__ import annotations

import hashlib

import numpy as np

# Recorded in dataset_meta.json: bump when the mapping from (seed, clip id) to side or order changes.
SPLIT_METHOD = "clip-blake2b-v1"
# Recorded in dataset_meta.json for --split-by drive.
DRIVE_SPLIT_METHOD = "drive-blake2b-v1"
# Official split of clip_index.parquet -> side of our split: only `train` clips are trained on; `val` and `test`
# clips both go to our test side.
OFFICIAL_SPLIT_MAP = {"train": "train", "val": "test", "test": "test"}


def _hash64(seed: int, clip_id: str, purpose: bytes) -> int:
    digest = hashlib.blake2b(clip_id.encode("utf-8"), digest_size=8, key=str(seed).encode("ascii"), person=purpose)
    return int.from_bytes(digest.digest(), "big")


def split_unit(seed: int, clip_id: str) -> float:
    """The clip's split value in [0, 1): test when it is below the test ratio."""
    return (_hash64(seed, clip_id, b"split") >> 11) / 2.0**53


def drive_is_test(seed: int, drives: list[str], test_ratio: float) -> np.ndarray:
    """(len(drives),) bool: the drive key's keyed hash (personalised apart from the clip hash) is below the ratio."""
    units = [(_hash64(seed, d, b"drive-split") >> 11) / 2.0**53 for d in drives]
    return np.array([u < test_ratio for u in units], dtype=bool)


def held_out(clip_ids: np.ndarray, drives: np.ndarray, test_clips: frozenset, held_drives: frozenset) -> np.ndarray:
    """(n,) bool: the clip is named in `test_clips` or its drive key is one of `held_drives` ("" never is)."""
    named = np.isin(clip_ids, list(test_clips)) if test_clips else np.zeros(len(clip_ids), dtype=bool)
    return named | (np.isin(drives, list(held_drives)) if held_drives else False)


def selection_key(seed: int, clip_id: str) -> int:
    """The clip's place in the `--max-samples` order (smaller first), a 64-bit integer."""
    return _hash64(seed, clip_id, b"select")


def clip_is_test(seed: int, clip_ids: list[str], test_ratio: float) -> np.ndarray:
    """(len(clip_ids),) bool: the clip is on the test side."""
    return np.array([split_unit(seed, c) < test_ratio for c in clip_ids], dtype=bool)


def selection_keys(seed: int, clip_ids: list[str]) -> np.ndarray:
    """(len(clip_ids),) uint64 `selection_key` of each clip."""
    return np.array([selection_key(seed, c) for c in clip_ids], dtype=np.uint64)


def selection_cutoff(keys: np.ndarray, counts: np.ndarray, max_samples: int) -> int:
    """The largest selection key taken: whole clips in key order until their segments reach `max_samples`.

    Args:
        keys: (clips,) uint64 distinct selection keys.
        counts: (clips,) segments of each clip.
    """
    order = np.argsort(keys, kind="stable")
    reached = np.cumsum(counts[order]) >= max_samples
    last = int(np.argmax(reached)) if reached.any() else len(order) - 1
    return int(keys[order][last])


__all__ = [
    "DRIVE_SPLIT_METHOD",
    "OFFICIAL_SPLIT_MAP",
    "SPLIT_METHOD",
    "clip_is_test",
    "drive_is_test",
    "held_out",
    "selection_cutoff",
    "selection_key",
    "selection_keys",
    "split_unit",
]
