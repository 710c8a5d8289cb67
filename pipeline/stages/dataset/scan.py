"""The build's first pass over a segments file: every record checked, videos looked up (one listing per
directory), duplicate ids and clips split across sides refused, and per clip its selection key, kept segments and
side. Memory: a batch, plus about 25 bytes per clip.

Duplicate ids are found clip by clip (`_ClipRunIds`). That is complete when each clip's records are contiguous and
every id is `<clip_id>_<NN>` (ids of different clips then differ), which is what the segment stage writes; a file
where either fails is checked again over all its ids (8 bytes per segment).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.contracts.record_checks import first_bad_video
from pipeline.contracts.segments_reader import SegmentBatch, SegmentsFile, record_error
from pipeline.contracts.video_files import VideoFiles
from pipeline.core.errors import PipelineError
from pipeline.core.progress import ProgressSink
from pipeline.stages.dataset.rows import BatchClips, SplitRule, batch_clips, row_is_test

log = logging.getLogger(__name__)


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
        PipelineError: a bad record (one whose video leaves the root through a symlink too), a duplicate id, a
            clip on both sides (official split), or with `strict` a missing video.
    """
    videos = VideoFiles()
    root_text = str(root)
    missing: set[str] = set()
    ids = _ClipRunIds(source.path)
    keys, counts, tests = [], [], []
    records = 0
    for batch in source.batches():
        table = batch.table
        clips = batch_clips(batch, rule.seed)
        ids.add(batch, clips)
        is_test = row_is_test(batch, clips, rule, source.path)
        _check_links(source, batch, root, videos)
        exists = videos.exist(root_text, table.column("video"))
        if not exists.all():
            row = int(np.argmin(exists))
            if strict:
                rid, video = table.column("id")[row].as_py(), table.column("video")[row].as_py()
                raise PipelineError(f"video of segment {rid!r} not found: {root / video} (--strict)")
            missing.update(table.column("video").filter(pa.array(~exists)).to_pylist())
        keys.append(clips.keys)
        counts.append(np.bincount(clips.rows[exists], minlength=len(clips.ids)))
        clip_test = np.zeros(len(clips.ids), dtype=bool)
        clip_test[clips.rows] = is_test
        tests.append(clip_test)
        records += len(table)
        progress.advance(len(table))
    if not ids.complete():
        log.info("%s: %s; checking its ids over the whole file", source.path, ids.why_incomplete())
        _check_unique_ids(source)
    all_keys, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(counts), minlength=len(all_keys)).astype(np.int64)
    test_votes = np.bincount(inverse, weights=np.concatenate(tests), minlength=len(all_keys))
    part_votes = np.bincount(inverse, minlength=len(all_keys))
    mixed = (test_votes > 0) & (test_votes < part_votes)
    if mixed.any():
        _raise_mixed_clip(source, rule.seed, int(all_keys[np.argmax(mixed)]))
    return ScanResult(records, frozenset(missing), all_keys, total, test_votes > 0)


def _check_links(source: SegmentsFile, batch: SegmentBatch, root: Path, videos: VideoFiles) -> None:
    """Refuse a record whose video leaves the video root through a symlink (a bad record, like a '..' path)."""
    bad = first_bad_video(batch.table.column("video"), root, videos)
    if bad is not None:
        row, problem = bad
        rid = batch.table.column("id")[row].as_py()
        raise record_error(source.path, batch.start + row, rid, f"field 'video' {problem}")


def _check_unique_ids(source: SegmentsFile) -> None:
    """Refuse a repeated segment id anywhere in the file: 64-bit hashes of all ids, equal ones confirmed by reading
    the ids again."""
    import pandas as pd

    hashes = np.concatenate(
        [pd.util.hash_array(b.table.column("id").to_numpy(zero_copy_only=False)) for b in source.batches()]
    )
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


class _ClipRunIds:
    """Duplicate ids within each run of consecutive records of one clip (exact: the current run's ids are held), and
    what tells whether that covers the whole file: the selection key of every run (a clip with two runs is not
    contiguous) and whether every id is `<clip_id>_<NN>`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_keys: list[np.ndarray] = []
        self.canonical = True
        self._clip: str | None = None  # clip of the last run so far
        self._ids: set[str] = set()  # its ids

    def add(self, batch: SegmentBatch, clips: BatchClips) -> None:
        """Check the next batch (in file order).

        Raises:
            PipelineError: an id repeats within a clip's run of records.
        """
        import pandas as pd
        import pyarrow.compute as pc

        table = batch.table
        clip = table.column("clip_id").to_numpy(zero_copy_only=False)
        ids = table.column("id").to_numpy(zero_copy_only=False)
        new_run = np.r_[clip[0] != self._clip, clip[1:] != clip[:-1]]
        run = np.cumsum(new_run)  # 0 = the run continued from the previous batch
        repeated = pd.DataFrame({"run": run, "id": ids}).duplicated().to_numpy().copy()
        repeated[run == 0] |= np.isin(ids[run == 0], list(self._ids))
        if repeated.any():
            raise PipelineError(f"{self.path}: duplicate segment id {ids[np.argmax(repeated)]!r}")
        self.run_keys.append(clips.keys[clips.rows[new_run]])
        last = ids[run == run[-1]].tolist()
        self._ids = self._ids.union(last) if run[-1] == 0 else set(last)
        self._clip = str(clip[-1])
        index = pc.utf8_lpad(table.column("segment_index").cast(pa.string()), 2, "0")
        expected = pc.binary_join_element_wise(table.column("clip_id"), index, "_")
        self.canonical &= bool(pc.all(pc.equal(table.column("id"), expected)).as_py())

    def complete(self) -> bool:
        """Whether the per-run check found every duplicate id of the file."""
        return self.canonical and self._contiguous()

    def why_incomplete(self) -> str:
        return "some ids are not <clip_id>_<NN>" if not self.canonical else "some clip's records are not contiguous"

    def _contiguous(self) -> bool:
        keys = np.concatenate(self.run_keys) if self.run_keys else np.zeros(0, np.uint64)
        return len(np.unique(keys)) == len(keys)


def _raise_mixed_clip(source: SegmentsFile, seed: int, key: int) -> None:
    for batch in source.batches():
        clips = batch_clips(batch, seed)
        for clip_id, clip_key in zip(clips.ids, clips.keys.tolist(), strict=True):
            if clip_key == key:
                raise PipelineError(f"{source.path}: clip {clip_id!r} has segments in both train and test splits")


__all__ = ["ScanResult", "scan"]
