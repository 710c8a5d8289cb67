"""Dataset rows from checked segment batches: each record's side of the split, and the Arrow table of the rows
(ids, timing, video, Qwen-VL messages, float32 targets) in the declared `features` schema.

Works a batch at a time, so the build's memory does not grow with the number of segments. `write_rows` writes
the rows of some consecutive parts of a segments file into the final shards of each side (`dataset_shards`); jobs
can run in separate processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.contracts.answer import format_answers
from pipeline.contracts.dataset_reader import SPLITS, features
from pipeline.contracts.messages import history_text, messages_column, user_text
from pipeline.contracts.segments_reader import SegmentBatch, SegmentsFile
from pipeline.contracts.target_text import trajectory_answers, trajectory_history_text
from pipeline.core.errors import PipelineError
from pipeline.stages.dataset.shards import Shard, ShardWriter
from pipeline.stages.dataset.split import OFFICIAL_SPLIT_MAP, clip_is_test, drive_is_test, held_out, selection_keys


@dataclass(frozen=True)
class SplitRule:
    """How a record's side and selection are decided (the build's split settings)."""

    # "clip" (keyed hash of the clip id), "drive" (of the drive key) or "official" (the record's `split`).
    split_by: str
    seed: int
    # Fraction of clips (drives) on the test side with split_by "clip" ("drive").
    test_ratio: float
    # Largest selection key kept (--max-samples), None = every clip.
    cutoff: int | None = None
    # Clips sent to test whatever the method (--test-clips).
    test_clips: frozenset[str] = frozenset()
    # Drive keys whose every clip goes to test (the drives of `test_clips`, unless --allow-drive-neighbours).
    held_drives: frozenset[str] = frozenset()


@dataclass
class BatchClips:
    """The clips of one batch."""

    # (rows,) index of each row's clip in `ids`.
    rows: np.ndarray
    # Distinct clip ids of the batch.
    ids: list[str]
    # (clips,) uint64 selection keys.
    keys: np.ndarray


def batch_clips(batch: SegmentBatch, seed: int) -> BatchClips:
    encoded = pc.dictionary_encode(batch.table.column("clip_id")).combine_chunks()
    ids = encoded.dictionary.to_pylist()
    return BatchClips(encoded.indices.to_numpy(zero_copy_only=False), ids, selection_keys(seed, ids))


def row_is_test(batch: SegmentBatch, clips: BatchClips, rule: SplitRule, path: Path) -> np.ndarray:
    """(rows,) bool: the record's side is test.

    Raises:
        PipelineError: with split_by "official", a record has no or an unknown `split`, or one clip of the batch
            has records on both sides; with split_by "drive", a record has no drive key.
    """
    table = batch.table
    drives = table.column("drive").fill_null("").to_numpy(zero_copy_only=False)
    if rule.split_by == "clip":
        is_test = clip_is_test(rule.seed, clips.ids, rule.test_ratio)[clips.rows]
    elif rule.split_by == "drive":
        if (drives == "").any():
            rid = table.column("id")[int(np.argmax(drives == ""))].as_py()
            raise PipelineError(f"{path}: segment {rid!r} has no drive key (needed by --split-by drive)")
        names, inverse = np.unique(drives, return_inverse=True)
        is_test = drive_is_test(rule.seed, names.tolist(), rule.test_ratio)[inverse]
    else:
        is_test = _official_is_test(batch, clips, path)
    clip_ids = np.asarray(clips.ids, dtype=object)[clips.rows]
    return is_test | held_out(clip_ids, drives, rule.test_clips, rule.held_drives)


def _official_is_test(batch: SegmentBatch, clips: BatchClips, path: Path) -> np.ndarray:
    split = batch.table.column("split")
    ids = batch.table.column("id")
    if split.null_count:
        row = int(np.argmax(split.is_null().to_numpy(zero_copy_only=False)))
        rid = ids[row].as_py()
        raise PipelineError(f"{path}: segment {rid!r} has no field 'split' (needed by --split-by official)")
    names = split.to_numpy(zero_copy_only=False)
    unknown = ~np.isin(names, list(OFFICIAL_SPLIT_MAP))
    if unknown.any():
        row = int(np.argmax(unknown))
        raise PipelineError(f"{path}: segment {ids[row].as_py()!r} has unknown split {names[row]!r} (train/val/test)")
    is_test = np.isin(names, [k for k, v in OFFICIAL_SPLIT_MAP.items() if v == "test"])
    first = np.zeros(len(clips.ids), dtype=bool)
    first[clips.rows[::-1]] = is_test[::-1]
    mixed = first[clips.rows] != is_test
    if mixed.any():
        clip = clips.ids[clips.rows[np.argmax(mixed)]]
        raise PipelineError(f"{path}: clip {clip!r} has segments in both train and test splits")
    return is_test


@dataclass(frozen=True)
class RowText:
    """What the rows' conversations say: prompts, the history block, and what the answer holds."""

    system_prompt: str
    prompt: str
    # The user turn starts with the input window's measured motion (or path, with trajectory answers).
    history: bool
    # The answer is the future trajectory (`x,y` lines), else the (speed, curvature) lines.
    trajectory: bool = False
    # History rows per second, Hz (the trajectory history block).
    history_hz: float = 10.0


def rows_table(table: pa.Table, n: int, text: RowText, schema: pa.Schema) -> pa.Table:
    """The dataset rows of checked segment records (a SCHEMA table), in `schema` (= features(n, extended)
    .arrow_schema: with the extended columns, the records' `cameras`, `videos` and trajectories as float32)."""
    videos = table.column("video").to_pylist()

    def targets(name: str) -> np.ndarray:
        return pc.list_flatten(table.column(name)).to_numpy(zero_copy_only=False).reshape(-1, n)

    answers, histories = _answers_and_histories(table, targets, text)
    users = [user_text(text.prompt, h) for h in histories] if text.history else [text.prompt] * len(videos)
    cameras, inputs = _camera_inputs(table, videos)
    messages = messages_column(inputs, answers, text.system_prompt, users, schema.field("messages").type, cameras)
    columns = {
        "id": table.column("id"),
        "clip_id": table.column("clip_id"),
        "chunk": table.column("chunk").cast(pa.int32()),
        "segment_index": table.column("segment_index").cast(pa.int32()),
        "start_us": table.column("start_us"),
        "end_us": table.column("end_us"),
        "video": table.column("video"),
        "messages": messages,
    }
    for name in ("velocity", "curvature", "history_velocity", "history_curvature"):
        values = pa.array(targets(name).astype(np.float32).ravel())
        columns[name] = pa.FixedSizeListArray.from_arrays(values, n)
    for name in ("cameras", "videos", "future_xyh", "history_xyh"):
        if name in schema.names:
            column = table.column(name)
            if column.null_count:
                rid = table.column("id")[int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))].as_py()
                raise PipelineError(f"segment {rid!r} has no field {name!r} (segments cut before record version 5)")
            columns[name] = column.cast(schema.field(name).type)
    return pa.Table.from_pydict(columns, schema=schema)


def _xyh(table: pa.Table, name: str) -> np.ndarray:
    """(rows, k, 3) float64 of a trajectory column."""
    flat = pc.list_flatten(pc.list_flatten(table.column(name))).to_numpy(zero_copy_only=False)
    return flat.reshape(len(table), -1, 3)


def _answers_and_histories(
    table: pa.Table, targets: Callable[[str], np.ndarray], text: RowText
) -> tuple[list[str], list[str | None]]:
    """Each row's answer text and its history block (None entries without --history)."""
    rows = len(table)
    if text.trajectory:
        answers = trajectory_answers(_xyh(table, "future_xyh"))
        if not text.history:
            return answers, [None] * rows
        return answers, [trajectory_history_text(h, text.history_hz) for h in _xyh(table, "history_xyh")]
    answers = format_answers(targets("velocity"), targets("curvature"))
    if not text.history:
        return answers, [None] * rows
    hv, hc = targets("history_velocity"), targets("history_curvature")
    return answers, [history_text(hv[i], hc[i]) for i in range(rows)]


def _camera_inputs(table: pa.Table, videos: list[str]) -> tuple[tuple[str, ...], list[str] | list[list[str]]]:
    """The cameras of the rows (one set for all) and each row's video paths: one path for one camera."""
    if "cameras" not in table.column_names or len(table) == 0:
        return (), videos
    cameras = tuple(table.column("cameras")[0].as_py() or ())
    if len(cameras) <= 1:
        return (), videos
    if not pc.all(pc.equal(pc.list_value_length(table.column("cameras")), len(cameras))).as_py():
        raise PipelineError(f"segments with different camera sets in one build (first: {', '.join(cameras)})")
    return cameras, table.column("videos").to_pylist()


@dataclass(frozen=True)
class RowsJob:
    """Write the rows of some consecutive parts of a segments file into shards `{out_dir}/{side}/job{index}-*.arrow`
    (picklable: jobs run in separate processes)."""

    path: Path
    n: int
    parts: range
    index: int
    out_dir: Path
    rule: SplitRule
    # Video paths (as in the records) whose file is missing: their rows are left out.
    missing: frozenset[str]
    text: RowText
    # Largest shard, bytes of Arrow data.
    max_shard_bytes: int
    # The rows carry cameras, videos and trajectories (features(n, extended=True)).
    extended: bool = False


def write_rows(job: RowsJob, advance: Callable[[int], None] | None = None) -> dict[str, list[Shard]]:
    """Write the job's rows, one `ShardWriter` per side, calling `advance(records)` after each batch; return the
    shards written per side, in order."""
    feats = features(job.n, job.extended)
    schema = feats.arrow_schema
    source = SegmentsFile(job.path, job.n)
    missing = pa.array(sorted(job.missing), type=pa.string())
    writers = {
        side: ShardWriter(job.out_dir / side, f"job{job.index:05d}", feats, job.max_shard_bytes) for side in SPLITS
    }
    try:
        for batch in source.batches(job.parts):
            clips = batch_clips(batch, job.rule.seed)
            is_test = row_is_test(batch, clips, job.rule, job.path)
            keep = ~pc.is_in(batch.table.column("video"), value_set=missing).to_numpy(zero_copy_only=False)
            if job.rule.cutoff is not None:
                keep &= clips.keys[clips.rows] <= np.uint64(job.rule.cutoff)
            for side, mask in (("train", keep & ~is_test), ("test", keep & is_test)):
                if mask.any():
                    rows = batch.table.filter(pa.array(mask))
                    writers[side].write(rows_table(rows, job.n, job.text, schema))
            if advance is not None:
                advance(len(batch.table))
    finally:
        shards = {side: writer.close() for side, writer in writers.items()}
    return shards


__all__ = ["BatchClips", "RowText", "RowsJob", "SplitRule", "batch_clips", "row_is_test", "rows_table", "write_rows"]
