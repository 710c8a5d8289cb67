"""Stage 2: cut each clip's camera video into short segments and compute next-second motion targets.

Reads a downloaded directory (or a synthetic repository) in place: `features.csv` and `clip_index.parquet` say
where each clip's video, frame timestamps and egomotion live. Per clip: frame timestamps → segment windows
(docs/ARCHITECTURE.md, "Timing conventions") → targets (`pipeline.egomotion`) → one decode pass writing every
segment (`pipeline.video`) → a per-clip metadata file, written last, which marks the clip complete. A re-run
verifies that file (same settings, same input fingerprint, every mp4 present with its recorded size) and skips the
clip; a clip whose inputs changed since (`pipeline.zip_fingerprint`) is cut again, a skipped one too. Finally the
per-clip files of this run are aggregated into `metadata/segments.json`, `segments.parquet` and `manifest.json`.

Every bad input (missing member, corrupt video, frame count mismatch, NaNs or gaps in egomotion, a short clip)
skips the clip or the segment with a one-line reason in the manifest and the log; the run goes on. A run in
which every clip was skipped because its zip could not be read fails with that reason.

Runs may share an output directory: a clip is cut under a lock file (`pipeline.cliplock`) next to its record. A
clip another live run holds is left to it, and at the end this run waits for it (or cuts it itself if that run
died), so each run's segments.json is complete; a clip locked from another host is reported as "locked".
"""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import catalog, cliplock
from pipeline import egomotion as ego
from pipeline.atomic import atomic_path, temp_sibling, write_json
from pipeline.errors import PipelineError
from pipeline.progress import NullProgress, ProgressSink
from pipeline.video import (
    EncodeSettings,
    SegmentRequest,
    UnreadableZipError,
    VideoError,
    cut_segments,
    locate_member,
    read_member,
)
from pipeline.zip_fingerprint import zip_fingerprint

log = logging.getLogger(__name__)

DEFAULT_CAMERA = "camera_front_wide_120fov"
EGOMOTION_FEATURE = "egomotion"
SEGMENTS_JSON = "segments.json"
SEGMENTS_PARQUET = "segments.parquet"
MANIFEST_JSON = "manifest.json"
CONFIG_JSON = "segment_config.json"
# Version of the per-clip record layout; a change makes a re-run redo clips (2: input fingerprints).
_RECORD_VERSION = 2
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


@dataclass(frozen=True)
class SegmentConfig:
    """Settings of the segment stage."""

    # Downloaded directory (or synthetic repository) with features.csv, clip_index.parquet and chunk zips.
    input_dir: Path = Path("physical_ai_data")
    # Where video_segments/ and metadata/ are written.
    output_dir: Path = Path("qwen_video_segments")
    # Process at most this many clips (after sharding); None = all.
    max_clips: int | None = 5
    # Chunk ids to process; empty = every chunk whose camera and egomotion zips are downloaded.
    chunks: tuple[int, ...] = ()
    # Camera feature name (from features.csv).
    camera: str = DEFAULT_CAMERA
    # Segment length, s.
    window_s: float = 1.0
    # Step between segment starts, s (smaller than window_s gives overlapping segments).
    stride_s: float = 1.0
    # Future horizon of the targets, s; a segment exists only if this much video follows it.
    horizon_s: float = 1.0
    # Output width x height, px (even); None keeps the source size.
    size: tuple[int, int] | None = (448, 252)
    # Target samples per second: n = round(fps * horizon_s) (velocity, curvature) pairs per segment.
    fps: float = 30.0
    # Processes over clips.
    workers: int = 1
    # (i, n): process the i-th of n deterministic, disjoint shards of the clip list.
    shard: tuple[int, int] = (0, 1)
    # libx264 preset; ultrafast keeps the cut near the decode-only floor (see benchmarks/segment_bench.py).
    preset: str = "ultrafast"
    # libx264 constant rate factor.
    crf: int = 23
    # Skip the source's H.264 deblocking filter while decoding: ~15 % faster, frames differ slightly.
    fast_decode: bool = False
    # Cut clips recorded as skipped again even if their inputs did not change (changed inputs always re-cut).
    retry_skipped: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_dir", Path(self.input_dir))
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        object.__setattr__(self, "chunks", tuple(int(c) for c in self.chunks))
        if self.size is not None:
            object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        object.__setattr__(self, "shard", (int(self.shard[0]), int(self.shard[1])))
        if self.max_clips is not None and self.max_clips < 1:
            raise PipelineError(f"--max-clips {self.max_clips}: must be >= 1")
        if not 0 < self.window_s <= 60:
            raise PipelineError(f"--window {self.window_s}: must be in (0, 60] seconds")
        if not 0 < self.stride_s <= 60:
            raise PipelineError(f"--stride {self.stride_s}: must be in (0, 60] seconds")
        if not 0 < self.horizon_s <= 60:
            raise PipelineError(f"horizon {self.horizon_s}: must be in (0, 60] seconds")
        if not 1 <= self.fps <= 1000 or round(self.fps * self.horizon_s) < 1:
            raise PipelineError(f"--fps {self.fps}: must be in [1, 1000] target samples per second")
        if self.size is not None:
            w, h = self.size
            if not (16 <= w <= 8192 and 16 <= h <= 8192) or w % 2 or h % 2:
                raise PipelineError(f"--size {w}x{h}: width and height must be even and in 16..8192")
        if self.workers < 1:
            raise PipelineError(f"--workers {self.workers}: must be >= 1")
        i, n = self.shard
        if n < 1 or not 0 <= i < n:
            raise PipelineError(f"--shard {i}/{n}: need n >= 1 and 0 <= i < n")
        if not 0 <= self.crf <= 51:
            raise PipelineError(f"crf {self.crf}: must be in 0..51")

    @property
    def n_targets(self) -> int:
        """Target pairs per segment."""
        return int(round(self.fps * self.horizon_s))

    def encode_settings(self) -> EncodeSettings:
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
            "window_s": self.window_s,
            "stride_s": self.stride_s,
            "horizon_s": self.horizon_s,
            "size": list(self.size) if self.size else "native",
            "fps": self.fps,
            "encode": {k: v for k, v in asdict(self.encode_settings()).items() if k != "decode_threads"},
        }
        return json.loads(json.dumps(signature))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_dir"] = str(self.input_dir.resolve())
        d["output_dir"] = str(self.output_dir.resolve())
        d["chunks"] = list(self.chunks)
        d["size"] = list(self.size) if self.size else "native"
        d["shard"] = f"{self.shard[0]}/{self.shard[1]}"
        return d


@dataclass(frozen=True)
class ClipJob:
    """Everything a worker needs to process one clip (picklable)."""

    # Clip UUID.
    clip_id: str
    # Chunk id.
    chunk: int
    # Official split.
    split: str
    # clip_is_valid from clip_index.parquet.
    is_valid: bool
    # Camera zip and its member names.
    camera_zip: Path
    video_member: str
    timestamps_member: str
    # Egomotion zip and member name.
    egomotion_zip: Path
    egomotion_member: str


@dataclass
class SegmentRunSummary:
    """What `run` did."""

    # Clips in this run's selection.
    clips: int = 0
    # Clips with segments written (now or by an earlier run).
    done: int = 0
    # Clips skipped, with a reason.
    skipped: int = 0
    # Clips found complete and not redone.
    reused: int = 0
    # Clips another live run was cutting, left to it (not in this run's segments.json unless it finished first).
    locked: int = 0
    # Segments in segments.json.
    segments: int = 0
    # Where the aggregate files were written.
    metadata_dir: Path = field(default_factory=Path)


def clip_record_path(output_dir: Path, chunk: int, clip_id: str) -> Path:
    return Path(output_dir) / "metadata" / "clips" / f"chunk_{chunk:04d}" / f"{clip_id}.json"


def clip_lock_path(output_dir: Path, chunk: int, clip_id: str) -> Path:
    """The lock file a run holds while it cuts the clip (next to the clip's record)."""
    return clip_record_path(output_dir, chunk, clip_id).with_suffix(".lock")


def segment_video_relpath(chunk: int, clip_id: str, index: int) -> str:
    return f"video_segments/chunk_{chunk:04d}/{clip_id}/{clip_id}_{index:02d}.mp4"


# --- clip selection --------------------------------------------------------------------------------------------


def list_jobs(config: SegmentConfig) -> list[ClipJob]:
    """The clips of this run: clip_index ∩ downloaded chunks (∩ --chunk), sorted, sharded, capped by max_clips."""
    ds = catalog.open_dataset_dir(config.input_dir)
    camera = ds.features.get(config.camera)
    if camera is None or not {"video", "frame_timestamps"} <= set(camera.clip_files_in_zip):
        cams = [f.name for f in ds.features.values() if "video" in f.clip_files_in_zip]
        raise PipelineError(
            f"--camera {config.camera!r}: not a camera feature of features.csv (valid: {', '.join(cams)})"
        )
    if EGOMOTION_FEATURE not in ds.features:
        raise PipelineError(f"{config.input_dir / catalog.FEATURES_CSV}: no {EGOMOTION_FEATURE!r} feature")
    egomotion = ds.features[EGOMOTION_FEATURE]
    downloaded = sorted(set(ds.downloaded_chunks(config.camera)) & set(ds.downloaded_chunks(EGOMOTION_FEATURE)))
    if config.chunks:
        catalog.validate_chunk_ids(list(config.chunks), ds.clip_index.chunks, flag="--chunk")
        missing = [c for c in config.chunks if c not in downloaded]
        if missing:
            raise PipelineError(
                f"--chunk: chunk(s) {catalog.format_ranges(missing)} have no {config.camera} and egomotion zips in "
                f"{config.input_dir} (downloaded: {catalog.format_ranges(downloaded) or 'none'})"
            )
        chunks = list(config.chunks)
    else:
        chunks = downloaded
        if not chunks:
            raise PipelineError(
                f"--input-dir {config.input_dir}: no chunk has both {config.camera} and egomotion zips"
            )
    table = ds.clip_index.table
    table = table[table["chunk"].isin(chunks)]
    rows = sorted(zip(table["chunk"].astype(int), table.index.astype(str), strict=True))
    i, n = config.shard
    rows = rows[i::n]
    if config.max_clips is not None:
        rows = rows[: config.max_clips]
    jobs = []
    for chunk, clip_id in rows:
        jobs.append(
            ClipJob(
                clip_id=clip_id,
                chunk=chunk,
                split=str(table.at[clip_id, "split"]),
                is_valid=bool(table.at[clip_id, "clip_is_valid"]),
                camera_zip=ds.chunk_path(config.camera, chunk),
                video_member=catalog.member_name(camera, "video", clip_id),
                timestamps_member=catalog.member_name(camera, "frame_timestamps", clip_id),
                egomotion_zip=ds.chunk_path(EGOMOTION_FEATURE, chunk),
                egomotion_member=catalog.member_name(egomotion, EGOMOTION_FEATURE, clip_id),
            )
        )
    return jobs


# --- one clip --------------------------------------------------------------------------------------------------


class _Skip(Exception):
    """The clip cannot be used; the message is the one-line reason. `input_level`: a whole zip is unreadable."""

    def __init__(self, reason: str, input_level: bool = False) -> None:
        super().__init__(reason)
        self.input_level = input_level


def _skip_from(err: VideoError) -> _Skip:
    return _Skip(str(err), input_level=isinstance(err, UnreadableZipError))


def _read_parquet_member(zip_path: Path, member: str) -> pd.DataFrame:
    try:
        data = read_member(zip_path, member)
    except VideoError as err:
        raise _skip_from(err) from None
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise _Skip(f"{member}: unreadable parquet ({type(err).__name__})") from None


def _frame_timestamps(job: ClipJob) -> np.ndarray:
    df = _read_parquet_member(job.camera_zip, job.timestamps_member)
    if "timestamp" not in df.columns:
        raise _Skip(f"{job.timestamps_member}: no 'timestamp' column")
    ts = df["timestamp"].to_numpy()
    if not np.issubdtype(ts.dtype, np.integer):
        raise _Skip(f"{job.timestamps_member}: timestamp column is {ts.dtype}, expected integer microseconds")
    return ts.astype(np.int64)


def _load_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def input_fingerprint(job: ClipJob) -> dict:
    """What the clip's outputs are made from: its zip members' CRC-32 and size, and its clip_is_valid flag."""
    return {
        "clip_is_valid": job.is_valid,
        "camera": zip_fingerprint(job.camera_zip, [job.video_member, job.timestamps_member]),
        "egomotion": zip_fingerprint(job.egomotion_zip, [job.egomotion_member]),
    }


def _is_complete(record: dict | None, config: SegmentConfig, inputs: dict) -> bool:
    """A clip record from an earlier run counts only if made with the same settings from the same inputs, and its
    files are intact; a skipped clip does not count with `retry_skipped`."""
    if not record or record.get("signature") != config.signature() or record.get("inputs") != inputs:
        return False
    if config.retry_skipped and record.get("status") == "skipped":
        return False
    for rel, size in record.get("files", {}).items():
        path = config.output_dir / rel
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def _clean_clip_dir(clip_dir: Path) -> None:
    """Remove what an interrupted or outdated run left for this clip (temp files and old segments)."""
    if clip_dir.is_dir():
        for path in clip_dir.iterdir():
            if path.is_file() and (path.suffix in (".mp4", ".tmp")):
                path.unlink(missing_ok=True)


def _reused(record_path: Path, config: SegmentConfig, inputs: dict) -> dict | None:
    record = _load_record(record_path)
    if not _is_complete(record, config, inputs):
        return None
    record["reused"] = True
    return record


def process_clip(job: ClipJob, config: SegmentConfig) -> dict:
    """Cut one clip and write its record (`metadata/clips/chunk_NNNN/<clip_id>.json`); return the record.

    A record already on disk with the same settings, the same input fingerprint and intact files is returned as is
    (`"reused": True`). The clip is cut under its lock file; if another live run holds it, nothing is touched and
    the returned (unwritten) record has status "locked". Never raises for bad input: the record then has status
    "skipped" and a reason.
    """
    record_path = clip_record_path(config.output_dir, job.chunk, job.clip_id)
    inputs = input_fingerprint(job)
    reused = _reused(record_path, config, inputs)
    if reused is not None:
        return reused
    lock = clip_lock_path(config.output_dir, job.chunk, job.clip_id)
    held = cliplock.acquire(lock)
    if held is not None:
        return {**_bare_record(job, "locked", held.reason), "reused": False, "lock_local": held.local}
    try:
        reused = _reused(record_path, config, inputs)  # another run may have finished it before we took the lock
        if reused is not None:
            return reused
        record = _cut_and_record(job, config, inputs)
        write_json(record_path, record)
    finally:
        cliplock.release(lock)
    record["reused"] = False
    return record


def _bare_record(job: ClipJob, status: str, reason: str) -> dict:
    return {
        "clip_id": job.clip_id,
        "chunk": job.chunk,
        "split": job.split,
        "status": status,
        "reason": reason,
        "segments": [],
        "skipped_segments": [],
        "warnings": [],
    }


def _cut_and_record(job: ClipJob, config: SegmentConfig, inputs: dict) -> dict:
    """Cut the clip (its lock held) into a fresh clip directory; the record to write."""
    base = {"clip_id": job.clip_id, "chunk": job.chunk, "split": job.split, "signature": config.signature()}
    base["inputs"] = inputs
    clip_dir = config.output_dir / "video_segments" / f"chunk_{job.chunk:04d}" / job.clip_id
    _clean_clip_dir(clip_dir)
    warnings: list[str] = []
    try:
        segments, skipped_segments = _cut_clip(job, config, clip_dir, warnings)
        record = {**base, "status": "done", "reason": None, "segments": segments, "skipped_segments": skipped_segments}
        record["files"] = {s["video"]: s.pop("_size_bytes") for s in segments}
    except _Skip as err:
        record = {**base, "status": "skipped", "reason": str(err), "segments": [], "skipped_segments": []}
        record["files"] = {}
        if err.input_level:
            record["input_level"] = True
        _clean_clip_dir(clip_dir)
        if clip_dir.is_dir() and not any(clip_dir.iterdir()):
            clip_dir.rmdir()
    record["warnings"] = warnings
    return record


def _cut_clip(
    job: ClipJob, config: SegmentConfig, clip_dir: Path, warnings: list[str]
) -> tuple[list[dict], list[dict]]:
    if not job.is_valid:
        raise _Skip("clip_is_valid is false in clip_index.parquet")
    ts = _frame_timestamps(job)
    try:
        clip_start, frame_dt, clip_end = ego.clip_timing(ts)
    except ValueError as err:
        raise _Skip(f"{job.timestamps_member}: {err}") from None
    duration = (clip_end - clip_start) / 1e6
    if duration + frame_dt / 2e6 < config.window_s + config.horizon_s:  # the same slack as segment_windows
        raise _Skip(
            f"clip is {duration:.2f} s long, shorter than window + horizon "
            f"({config.window_s + config.horizon_s:.2f} s)"
        )
    try:
        table = ego.clean_egomotion(_read_parquet_member(job.egomotion_zip, job.egomotion_member))
    except ego.EgomotionError as err:
        raise _Skip(f"{job.egomotion_member}: {err}") from None
    if table.n_duplicates:
        log.info("clip %s: dropped %d egomotion row(s) with repeated timestamps", job.clip_id, table.n_duplicates)
    if table.n_conflicting:
        warnings.append(
            f"{job.egomotion_member}: {table.n_conflicting} repeated timestamp(s) with different values "
            f"(first at {table.first_conflict_us} us); the first row of each was kept"
        )
    # Half a frame of slack (docs/ARCHITECTURE.md): clock jitter must not move a frame across a window edge.
    half_frame = frame_dt // 2
    start_us, end_us = ego.segment_windows(
        clip_start, clip_end, config.window_s, config.stride_s, config.horizon_s, tolerance_us=half_frame
    )
    ranges = ego.frames_in_windows(ts, start_us - half_frame, end_us - half_frame)
    window_us, horizon_us = int(round(config.window_s * 1e6)), int(round(config.horizon_s * 1e6))
    targets = ego.segment_targets(table, end_us, window_us, horizon_us, config.n_targets)
    skipped: list[dict] = []
    requests: list[SegmentRequest] = []
    for i in range(len(end_us)):
        reason = targets.reasons[i]
        if reason is None and ranges[i, 1] <= ranges[i, 0]:
            reason = "no video frame in the window"
        if reason is not None:
            skipped.append({"segment_index": i, "reason": reason})
            continue
        rel = segment_video_relpath(job.chunk, job.clip_id, i)
        requests.append(SegmentRequest(i, int(ranges[i, 0]), int(ranges[i, 1]), config.output_dir / rel))
    if not requests:
        first = skipped[0]["reason"] if skipped else "no segment window fits"
        raise _Skip(f"no usable segment ({len(skipped)} skipped; first: {first})")
    try:
        member = locate_member(job.camera_zip, job.video_member)
        written = cut_segments(member, ts, requests, config.encode_settings())
    except VideoError as err:
        raise _skip_from(err) from None
    records = []
    for w in written:
        i = w.index
        span = w.last_frame_us - w.first_frame_us
        fps = (w.frame_count - 1) * 1e6 / span if span > 0 else 1e6 / frame_dt
        records.append(
            {
                "id": f"{job.clip_id}_{i:02d}",
                "clip_id": job.clip_id,
                "chunk": job.chunk,
                "split": job.split,
                "camera": config.camera,
                "segment_index": i,
                "start_us": int(start_us[i]),
                "end_us": int(end_us[i]),
                "video": segment_video_relpath(job.chunk, job.clip_id, i),
                "frame_count": w.frame_count,
                "first_frame_us": w.first_frame_us,
                "last_frame_us": w.last_frame_us,
                "fps": round(fps, 4),
                "width": w.width,
                "height": w.height,
                "velocity": targets.velocity[i].tolist(),
                "curvature": targets.curvature[i].tolist(),
                "history_velocity": targets.history_velocity[i].tolist(),
                "history_curvature": targets.history_curvature[i].tolist(),
                "speed_mean_mps": float(targets.speed_mean_mps[i]),
                "speed_last_mps": float(targets.speed_last_mps[i]),
                "curvature_mean": float(targets.curvature_mean[i]),
                "curvature_last": float(targets.curvature_last[i]),
                "_size_bytes": w.size_bytes,
            }
        )
    return records, skipped


def _process_clip_safe(job: ClipJob, config: SegmentConfig) -> dict:
    """`process_clip`, turning an unexpected error into a skipped record (one bad clip never stops the run)."""
    try:
        return process_clip(job, config)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001 - reported in the manifest
        log.exception("clip %s: unexpected error", job.clip_id)
        reason = f"unexpected error: {type(err).__name__}: {err}".splitlines()[0]
        return {**_bare_record(job, "skipped", reason), "reused": False}


# --- the stage -------------------------------------------------------------------------------------------------


def run(config: SegmentConfig, progress: ProgressSink | None = None) -> SegmentRunSummary:
    """Run the segment stage; returns counts. Raises PipelineError for bad arguments or an unusable input dir."""
    progress = progress or NullProgress()
    jobs = list_jobs(config)
    _check_writable(config.output_dir)
    log.info(
        "segment: %d clip(s) from %s (shard %d/%d), %d worker(s)",
        len(jobs),
        config.input_dir,
        *config.shard,
        config.workers,
    )
    records: dict[str, dict] = {}
    if config.workers == 1 or len(jobs) <= 1:
        progress.start("segment clips", total=len(jobs))
        try:
            for job in jobs:
                records[job.clip_id] = _summarise(_process_clip_safe(job, config))
                progress.advance()
        finally:
            progress.finish()
    else:
        with ProcessPoolExecutor(max_workers=min(config.workers, len(jobs)), mp_context=_pool_context()) as pool:
            # Submitting starts the workers: do it before the progress bar starts its refresh thread (fork).
            futures = {pool.submit(_process_clip_safe, job, config): job for job in jobs}
            progress.start("segment clips", total=len(jobs))
            try:
                for future in as_completed(futures):
                    records[futures[future].clip_id] = _summarise(future.result())
                    progress.advance()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                progress.finish()
    _settle_locked(config, jobs, records)
    summary = _aggregate(config, jobs, records)
    _fail_if_no_input_was_readable(config, records)
    return summary


# Seconds between two looks at the clips another run on this host is cutting.
LOCK_POLL_S = 0.5


def _settle_locked(config: SegmentConfig, jobs: Sequence[ClipJob], records: dict[str, dict]) -> None:
    """Wait for the clips another live run on this host was cutting, then take them as it left them: complete
    (reused), or cut here if it died first. Clips locked from another host are left "locked" for this run."""
    pending = [j for j in jobs if records[j.clip_id]["status"] == "locked" and records[j.clip_id]["lock_local"]]
    if pending:
        log.info("segment: waiting for %d clip(s) another run on this host is cutting", len(pending))
    while pending:
        time.sleep(LOCK_POLL_S)
        still = []
        for job in pending:
            record = _process_clip_safe(job, config)
            if record["status"] == "locked" and record["lock_local"]:
                still.append(job)
            else:
                records[job.clip_id] = _summarise(record)
        pending = still


def _check_writable(output_dir: Path) -> None:
    """Refuse an output directory this process cannot write into, before any clip is tried."""
    clips = output_dir / "metadata" / "clips"
    try:
        clips.mkdir(parents=True, exist_ok=True)
        probe = temp_sibling(clips / "write_probe")
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise PipelineError(f"--output-dir {output_dir}: cannot write there ({err.strerror or err})") from None


def _fail_if_no_input_was_readable(config: SegmentConfig, records: dict[str, dict]) -> None:
    """Every clip skipped because a zip could not be read: the run failed (a user error), not an empty success."""
    if not records or not all(r["status"] == "skipped" and r["input_level"] for r in records.values()):
        return
    reasons = sorted({r["reason"] for r in records.values()})
    more = f" (and {len(reasons) - 1} other reason(s))" if len(reasons) > 1 else ""
    raise PipelineError(
        f"{reasons[0]}{more}: all {len(records)} clip(s) skipped; manifest in {_metadata_dir(config) / MANIFEST_JSON}"
    )


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork where the platform has it (workers start in ~10 ms instead of re-importing pandas/PyAV), else spawn.

    Workers are created at the first submit, while the parent runs no other thread and has not touched libav.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if sys.platform == "linux" and "fork" in methods else "spawn")


def _summarise(record: dict) -> dict:
    """Log a clip's outcome; keep only what the manifest needs (segments are re-read from the clip file)."""
    if record["status"] in ("skipped", "locked"):
        log.warning("clip %s %s: %s", record["clip_id"], record["status"], record["reason"])
    else:
        for s in record.get("skipped_segments", []):
            log.warning("clip %s segment %d skipped: %s", record["clip_id"], s["segment_index"], s["reason"])
    for warning in record.get("warnings", []):
        log.warning("clip %s: %s", record["clip_id"], warning)
    return {
        "status": record["status"],
        "reason": record["reason"],
        "segments": len(record["segments"]),
        "skipped_segments": record["skipped_segments"],
        "warnings": record.get("warnings", []),
        "input_level": bool(record.get("input_level")),
        "lock_local": bool(record.get("lock_local")),
        "reused": bool(record.get("reused")),
    }


def _metadata_dir(config: SegmentConfig) -> Path:
    i, n = config.shard
    base = config.output_dir / "metadata"
    return base if n == 1 else base / f"shard_{i}_of_{n}"


def _aggregate(config: SegmentConfig, jobs: Sequence[ClipJob], results: dict[str, dict]) -> SegmentRunSummary:
    """Write segments.json, segments.parquet, manifest.json and the config for this run's clips (in clip order).

    Segments are streamed from the per-clip files, so memory does not grow with the number of clips.
    """
    meta = _metadata_dir(config)
    meta.mkdir(parents=True, exist_ok=True)
    clips: list[dict] = []
    summary = SegmentRunSummary(clips=len(jobs), metadata_dir=meta)
    json_tmp, parquet_tmp = temp_sibling(meta / SEGMENTS_JSON), temp_sibling(meta / SEGMENTS_PARQUET)
    try:
        with open(json_tmp, "w", encoding="utf-8") as fj, _ParquetStream(parquet_tmp) as fp:
            fj.write("[")
            for job in jobs:
                res = results[job.clip_id]
                clips.append({"clip_id": job.clip_id, "chunk": job.chunk, **{k: res[k] for k in _MANIFEST_KEYS}})
                summary.done += res["status"] == "done"
                summary.skipped += res["status"] == "skipped"
                summary.reused += res["reused"]
                summary.locked += res["status"] == "locked"
                if not res["segments"]:
                    continue
                record = _load_record(clip_record_path(config.output_dir, job.chunk, job.clip_id)) or {}
                for seg in record.get("segments", []):
                    fj.write(("\n" if summary.segments == 0 else ",\n") + json.dumps(seg))
                    fp.add(seg)
                    summary.segments += 1
            fj.write("\n]\n")
        _replace_if_changed(json_tmp, meta / SEGMENTS_JSON)
        _replace_if_changed(parquet_tmp, meta / SEGMENTS_PARQUET)
    finally:
        json_tmp.unlink(missing_ok=True)
        parquet_tmp.unlink(missing_ok=True)
    config_json = config.to_json()
    _write_if_changed(
        meta / MANIFEST_JSON, (json.dumps({"config": config_json, "clips": clips}, indent=2) + "\n").encode()
    )
    _write_if_changed(meta / CONFIG_JSON, (json.dumps(config_json, indent=2) + "\n").encode())
    log.info(
        "segment: %d segment(s) from %d clip(s) done (%d reused), %d skipped; metadata in %s",
        summary.segments,
        summary.done,
        summary.reused,
        summary.skipped,
        meta,
    )
    if summary.locked:
        log.warning(
            "segment: %d clip(s) are locked by a run on another host and not in this segments.json; re-run "
            "when it has finished",
            summary.locked,
        )
    return summary


_MANIFEST_KEYS = ("status", "reason", "segments", "skipped_segments", "warnings")


_COLUMNS = (
    ("id", "string"),
    ("clip_id", "string"),
    ("chunk", "int64"),
    ("split", "string"),
    ("camera", "string"),
    ("segment_index", "int64"),
    ("start_us", "int64"),
    ("end_us", "int64"),
    ("video", "string"),
    ("frame_count", "int64"),
    ("first_frame_us", "int64"),
    ("last_frame_us", "int64"),
    ("fps", "float64"),
    ("width", "int64"),
    ("height", "int64"),
)
_LIST_COLUMNS = ("velocity", "curvature", "history_velocity", "history_curvature")
_SUMMARY_COLUMNS = ("speed_mean_mps", "speed_last_mps", "curvature_mean", "curvature_last")


class _ParquetStream:
    """Write segment records to a parquet file in row groups of a fixed schema (an empty table too)."""

    ROW_GROUP = 20_000

    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = [pa.field(n, pa.string() if kind == "string" else getattr(pa, kind)()) for n, kind in _COLUMNS]
        fields += [pa.field(name, pa.list_(pa.float64())) for name in _LIST_COLUMNS]
        fields += [pa.field(name, pa.float64()) for name in _SUMMARY_COLUMNS]
        self._pa = pa
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(str(path), self._schema)
        self._batch: list[dict] = []

    def add(self, record: dict) -> None:
        self._batch.append(record)
        if len(self._batch) >= self.ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._writer.write_table(self._pa.Table.from_pylist(self._batch, schema=self._schema))
            self._batch = []

    def __enter__(self) -> _ParquetStream:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._flush()
        self._writer.close()


def _replace_if_changed(tmp: Path, path: Path) -> None:
    """Rename a finished temp file into place, unless `path` already has identical bytes (then leave it)."""
    if path.is_file() and path.stat().st_size == tmp.stat().st_size and _same_bytes(tmp, path):
        tmp.unlink()
        return
    os.replace(tmp, path)


def _same_bytes(a: Path, b: Path, block: int = 1 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(block), fb.read(block)
            if x != y:
                return False
            if not x:
                return True


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically, but leave an identical existing file untouched (a re-run changes no mtime)."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


__all__ = [
    "ClipJob",
    "SegmentConfig",
    "SegmentRunSummary",
    "clip_record_path",
    "list_jobs",
    "parse_shard",
    "parse_size",
    "process_clip",
    "run",
    "segment_video_relpath",
]
