"""The build's first pass over a segments file: every record checked, videos looked up (one listing per
directory), duplicate ids and clips split across sides refused, and per clip its selection key, kept segments and
side. Memory: a batch, plus 8 bytes per segment (id hashes) and 17 per clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.dataset_rows import SplitRule, batch_clips, row_is_test
from pipeline.errors import PipelineError
from pipeline.progress import ProgressSink
from pipeline.segments_reader import SegmentsFile
from pipeline.video_files import VideoFiles


@dataclass
class ScanResult:
    """What the first pass found."""

    # Records in the file.
    records: int
    # `video` values (as in the records) whose file is missing.
    missing: frozenset[str]
    # (clips,) uint64 distinct selection keys of the clips.
    keys: np.ndarray
    # (clips,) segments of each clip whose video exists.
    counts: np.ndarray
    # (clips,) bool: the clip is on the test side.
    is_test: np.ndarray


def scan(source: SegmentsFile, rule: SplitRule, root: Path, strict: bool, progress: ProgressSink) -> ScanResult:
    """Check every record of `source` and summarise its clips (see `ScanResult`).

    Raises:
        PipelineError: a bad record, a duplicate id, a clip on both sides (official split), or with `strict` a
            missing video.
    """
    import pandas as pd

    videos = VideoFiles()
    root_text = str(root)
    missing: set[str] = set()
    id_hashes, keys, counts, tests = [], [], [], []
    records = 0
    for batch in source.batches():
        table = batch.table
        clips = batch_clips(batch, rule.seed)
        is_test = row_is_test(batch, clips, rule, source.path)
        exists = videos.exist(root_text, table.column("video"))
        if not exists.all():
            row = int(np.argmin(exists))
            if strict:
                rid, video = table.column("id")[row].as_py(), table.column("video")[row].as_py()
                raise PipelineError(f"video of segment {rid!r} not found: {root / video} (--strict)")
            missing.update(table.column("video").filter(pa.array(~exists)).to_pylist())
        id_hashes.append(pd.util.hash_array(table.column("id").to_numpy(zero_copy_only=False)))
        keys.append(clips.keys)
        counts.append(np.bincount(clips.rows[exists], minlength=len(clips.ids)))
        clip_test = np.zeros(len(clips.ids), dtype=bool)
        clip_test[clips.rows] = is_test
        tests.append(clip_test)
        records += len(table)
        progress.advance(len(table))
    _check_unique_ids(source, np.concatenate(id_hashes))
    all_keys, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(counts), minlength=len(all_keys)).astype(np.int64)
    test_votes = np.bincount(inverse, weights=np.concatenate(tests), minlength=len(all_keys))
    part_votes = np.bincount(inverse, minlength=len(all_keys))
    mixed = (test_votes > 0) & (test_votes < part_votes)
    if mixed.any():
        _raise_mixed_clip(source, rule.seed, int(all_keys[np.argmax(mixed)]))
    return ScanResult(records, frozenset(missing), all_keys, total, test_votes > 0)


def _check_unique_ids(source: SegmentsFile, hashes: np.ndarray) -> None:
    """Refuse a repeated segment id; equal 64-bit hashes are confirmed by reading the ids again."""
    import pandas as pd

    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(repeated):
        return
    suspects = set(repeated.tolist())
    seen: set[str] = set()
    for batch in source.batches():
        ids = batch.table.column("id").to_numpy(zero_copy_only=False)
        for rid, h in zip(ids, pd.util.hash_array(ids).tolist(), strict=True):
            if h in suspects:
                if rid in seen:
                    raise PipelineError(f"{source.path}: duplicate segment id {rid!r}")
                seen.add(rid)


def _raise_mixed_clip(source: SegmentsFile, seed: int, key: int) -> None:
    for batch in source.batches():
        clips = batch_clips(batch, seed)
        for clip_id, clip_key in zip(clips.ids, clips.keys.tolist(), strict=True):
            if clip_key == key:
                raise PipelineError(f"{source.path}: clip {clip_id!r} has segments in both train and test splits")


__all__ = ["ScanResult", "scan"]
