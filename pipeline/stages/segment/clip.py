"""One clip of the segment stage: frame timestamps → segment windows → targets (`pipeline.av.egomotion`) → one decode
pass writing every segment (`pipeline.av.video`) → the clip's record, written last under the clip's lock file.

Bad input never raises here: the record says "skipped" with a one-line reason.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.av import egomotion as ego
from pipeline.av import poses
from pipeline.av.video import (
    SegmentRequest,
    UnreadableZipError,
    WrittenSegment,
    cut_segments,
    locate_member,
    read_member,
)
from pipeline.av.zip_fingerprint import zip_fingerprint
from pipeline.contracts.segment_record import SegmentRecord
from pipeline.core.atomic import write_json
from pipeline.core.environment_errors import environment_fault, is_environment_fault
from pipeline.core.errors import VideoError
from pipeline.stages.segment import cliplock
from pipeline.stages.segment.config import SegmentConfig
from pipeline.stages.segment.frames import ClipFrames, window_requests
from pipeline.stages.segment.jobs import ClipJob, clip_lock_path, clip_record_path, segment_video_relpath

log = logging.getLogger(__name__)


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


def _frame_timestamps(camera_zip: Path, member: str) -> np.ndarray:
    df = _read_parquet_member(camera_zip, member)
    if "timestamp" not in df.columns:
        raise _Skip(f"{member}: no 'timestamp' column")
    ts = df["timestamp"].to_numpy()
    if not np.issubdtype(ts.dtype, np.integer):
        raise _Skip(f"{member}: timestamp column is {ts.dtype}, expected integer microseconds")
    return ts.astype(np.int64)


def load_clip_record(path: Path) -> dict | None:
    """A clip record written by an earlier run, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def input_fingerprint(job: ClipJob) -> dict:
    """What the clip's outputs are made from: its zip members' CRC-32 and size, and its clip_is_valid flag."""
    fingerprint = {
        "clip_is_valid": job.is_valid,
        "drive": [job.drive, job.drive_offset_us],
        "camera": zip_fingerprint(job.camera_zip, [job.video_member, job.timestamps_member]),
        "egomotion": zip_fingerprint(job.egomotion_zip, [job.egomotion_member]),
    }
    if job.more_cameras:
        fingerprint["more_cameras"] = {
            c.camera: zip_fingerprint(c.camera_zip, [c.video_member, c.timestamps_member]) for c in job.more_cameras
        }
    return fingerprint


def _is_complete(record: dict | None, config: SegmentConfig, inputs: dict | None) -> bool:
    """A clip record from an earlier run counts only if made with the same settings from the same inputs (None:
    the record's own fingerprint is trusted), and its files are intact; a skipped clip does not count with
    `retry_skipped`."""
    if not record or record.get("signature") != config.signature():
        return False
    if inputs is not None and record.get("inputs") != inputs:
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


def _reused(record_path: Path, config: SegmentConfig, inputs: dict | None) -> dict | None:
    record = load_clip_record(record_path)
    if not _is_complete(record, config, inputs):
        return None
    record["reused"] = True
    return record


def completed_record(job: ClipJob, config: SegmentConfig, verify_inputs: bool = True) -> dict | None:
    """The clip's record from an earlier run (`"reused": True`) if it is complete for `config`, else None.

    `verify_inputs=False` reads only the output directory: for source zips that are no longer on disk
    (`pipeline prepare` deleted them after a verified download), the record's own input fingerprint is trusted.
    """
    inputs = input_fingerprint(job) if verify_inputs else None
    return _reused(clip_record_path(config.output_dir, job.chunk, job.clip_id), config, inputs)


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
    except BaseException:
        # Interrupted between cutting and writing the record: no segment may outlive its missing record.
        if _reused(record_path, config, inputs) is None:
            _clean_clip_dir(_clip_dir(config, job))
        raise
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


def _clip_dir(config: SegmentConfig, job: ClipJob) -> Path:
    return (config.output_dir / segment_video_relpath(job.chunk, job.clip_id, 0)).parent


def _cut_and_record(job: ClipJob, config: SegmentConfig, inputs: dict) -> dict:
    """Cut the clip (its lock held) into a fresh clip directory; the record to write."""
    base = {"clip_id": job.clip_id, "chunk": job.chunk, "split": job.split, "signature": config.signature()}
    base["inputs"] = inputs
    clip_dir = _clip_dir(config, job)
    _clean_clip_dir(clip_dir)
    warnings: list[str] = []
    try:
        cut, skipped_segments = _cut_clip(job, config, warnings)
        segments = [c.record.to_json() for c in cut]
        record = {**base, "status": "done", "reason": None, "segments": segments, "skipped_segments": skipped_segments}
        record["files"] = {path: size for c in cut for path, size in c.files.items()}
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


@dataclass(frozen=True)
class CutSegment:
    """One segment written to disk: its record and the size of each of its mp4s (bytes, by path), which the clip
    record keeps apart (`"files"`) to find a damaged output on a re-run."""

    record: SegmentRecord
    files: dict[str, int]


@dataclass(frozen=True)
class _Plan:
    """The segments of a clip to cut: S windows, their targets, and which of them get an mp4."""

    # (S,) int64 µs window starts and ends.
    start_us: np.ndarray
    end_us: np.ndarray
    targets: ego.SegmentTargets
    # Ego-frame trajectories; None when the targets are "motion" only.
    trajectory: poses.TrajectoryTargets | None
    # The windows with targets and frames, to encode.
    requests: list[SegmentRequest]
    # The same windows of each camera after the first (its own frames), in `job.more_cameras` order.
    more_requests: list[list[SegmentRequest]]
    # {"segment_index", "reason"} of the others.
    skipped: list[dict]


def _cut_clip(job: ClipJob, config: SegmentConfig, warnings: list[str]) -> tuple[list[CutSegment], list[dict]]:
    """The segments written for the clip and the {"segment_index", "reason"} of those skipped. Raises `_Skip`."""
    if not job.is_valid:
        raise _Skip("clip_is_valid is false in clip_index.parquet")
    frames = _clip_frames(job, config)
    more = [_camera_frames(c.camera_zip, c.timestamps_member) for c in job.more_cameras]
    plan = _plan_segments(job, config, frames, _egomotion(job, warnings), more)
    more_files: dict[int, dict[str, int]] = {}
    try:
        member = locate_member(job.camera_zip, job.video_member)
        written = cut_segments(member, frames.timestamps_us, plan.requests, config.encode_settings())
        for source, clock, requests in zip(job.more_cameras, more, plan.more_requests, strict=True):
            member = locate_member(source.camera_zip, source.video_member)
            for w in cut_segments(member, clock.timestamps_us, requests, config.encode_settings()):
                rel = segment_video_relpath(job.chunk, job.clip_id, w.index, source.camera)
                more_files.setdefault(w.index, {})[rel] = w.size_bytes
    except VideoError as err:
        raise _skip_from(err) from None
    return [_cut_segment(job, config, frames, plan, w, more_files.get(w.index, {})) for w in written], plan.skipped


def _camera_frames(camera_zip: Path, member: str) -> ClipFrames:
    """A camera's frame clock from its timestamps member."""
    ts = _frame_timestamps(camera_zip, member)
    try:
        return ClipFrames(ts, *ego.clip_timing(ts))
    except ValueError as err:
        raise _Skip(f"{member}: {err}") from None


def _clip_frames(job: ClipJob, config: SegmentConfig) -> ClipFrames:
    """The frame clock, once the clip is known to be long enough for one window and its horizon."""
    clock = _camera_frames(job.camera_zip, job.timestamps_member)
    clip_start, frame_dt, clip_end = clock.start_us, clock.frame_dt_us, clock.end_us
    duration = (clip_end - clip_start) / 1e6
    if duration + frame_dt / 2e6 < config.window_s + config.horizon_s:  # the same slack as segment_windows
        raise _Skip(
            f"clip is {duration:.2f} s long, shorter than window + horizon "
            f"({config.window_s + config.horizon_s:.2f} s)"
        )
    return clock


def _egomotion(job: ClipJob, warnings: list[str]) -> ego.EgomotionTable:
    """The clip's cleaned egomotion table; repeated timestamps with different values add a warning."""
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
    return table


def _plan_segments(
    job: ClipJob, config: SegmentConfig, frames: ClipFrames, table: ego.EgomotionTable, more: list[ClipFrames]
) -> _Plan:
    """The clip's windows and targets; a window without targets or without frames of a camera is skipped (each
    camera's frames are those of its own clock in the window, with its own half frame). Raises `_Skip` if all are."""
    # Half a frame of slack (docs/ARCHITECTURE.md): clock jitter must not move a frame across a window edge.
    half_frame = frames.frame_dt_us // 2
    start_us, end_us = ego.segment_windows(
        frames.start_us, frames.end_us, config.window_s, config.stride_s, config.horizon_s, tolerance_us=half_frame
    )
    clocks = [frames, *more]
    ranges = [
        ego.frames_in_windows(c.timestamps_us, start_us - c.frame_dt_us // 2, end_us - c.frame_dt_us // 2)
        for c in clocks
    ]
    window_us, horizon_us = int(round(config.window_s * 1e6)), int(round(config.horizon_s * 1e6))
    targets = ego.segment_targets(table, end_us, window_us, horizon_us, config.n_targets)
    settings = config.target_settings()
    trajectory = None
    if settings.trajectory:
        trajectory = poses.trajectory_targets(
            table, end_us, settings.n_future, settings.target_hz, settings.history_steps, settings.history_hz
        )
    skipped: list[dict] = []
    requests: list[SegmentRequest] = []
    more_requests: list[list[SegmentRequest]] = [[] for _ in more]
    for i in range(len(end_us)):
        reason = targets.reasons[i] or (trajectory.reasons[i] if trajectory is not None else None)
        window = window_requests(job, config, i, int(end_us[i]), clocks, ranges) if reason is None else reason
        if isinstance(window, str):
            skipped.append({"segment_index": i, "reason": window})
            continue
        requests.append(window[0])
        for out, request in zip(more_requests, window[1:], strict=True):
            out.append(request)
    if not requests:
        first = skipped[0]["reason"] if skipped else "no segment window fits"
        raise _Skip(f"no usable segment ({len(skipped)} skipped; first: {first})")
    return _Plan(start_us, end_us, targets, trajectory, requests, more_requests, skipped)


def _cut_segment(
    job: ClipJob,
    config: SegmentConfig,
    frames: ClipFrames,
    plan: _Plan,
    written: WrittenSegment,
    more_files: dict[str, int],
) -> CutSegment:
    """The record of one written segment (fps measured from its frames; one frame: the clip's frame rate)."""
    i, targets = written.index, plan.targets
    trajectory = plan.trajectory
    span = written.last_frame_us - written.first_frame_us
    fps = (written.frame_count - 1) * 1e6 / span if span > 0 else 1e6 / frames.frame_dt_us
    record = SegmentRecord(
        id=f"{job.clip_id}_{i:02d}",
        clip_id=job.clip_id,
        chunk=job.chunk,
        split=job.split,
        drive=job.drive,
        drive_offset_us=job.drive_offset_us,
        camera=config.camera,
        segment_index=i,
        start_us=int(plan.start_us[i]),
        end_us=int(plan.end_us[i]),
        video=segment_video_relpath(job.chunk, job.clip_id, i),
        frame_count=written.frame_count,
        first_frame_us=written.first_frame_us,
        last_frame_us=written.last_frame_us,
        fps=round(fps, 4),
        width=written.width,
        height=written.height,
        velocity=targets.velocity[i].tolist(),
        curvature=targets.curvature[i].tolist(),
        history_velocity=targets.history_velocity[i].tolist(),
        history_curvature=targets.history_curvature[i].tolist(),
        speed_mean_mps=float(targets.speed_mean[i]),
        speed_last_mps=float(targets.speed_last[i]),
        curvature_mean=float(targets.curvature_mean[i]),
        curvature_last=float(targets.curvature_last[i]),
        future_xyh=trajectory.future_xyh[i].tolist() if trajectory is not None else [],
        history_xyh=trajectory.history_xyh[i].tolist() if trajectory is not None else [],
        cameras=list(config.camera_names),
        videos=[segment_video_relpath(job.chunk, job.clip_id, i), *more_files],
    )
    return CutSegment(record, {record.video: written.size_bytes, **more_files})


def process_clip_safe(job: ClipJob, config: SegmentConfig) -> dict:
    """`process_clip`, turning an unexpected error into a skipped record (one bad clip never stops the run).

    An environment fault (full or read-only disk, permissions, memory) is not the clip's: it raises
    `EnvironmentFault`, which stops the run, and nothing is recorded for the clip.
    """
    try:
        return process_clip(job, config)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001 - reported in the manifest
        if is_environment_fault(err):
            raise environment_fault(err, getattr(err, "filename", None) or config.output_dir) from None
        log.exception("clip %s: unexpected error", job.clip_id)
        return skipped_record(job, f"unexpected error: {type(err).__name__}: {err}")


def skipped_record(job: ClipJob, reason: str) -> dict:
    """The (unwritten) record of a clip whose work failed: a re-run tries it again."""
    return {**_bare_record(job, "skipped", reason.splitlines()[0] if reason else "unknown error"), "reused": False}


__all__ = [
    "CutSegment",
    "completed_record",
    "input_fingerprint",
    "load_clip_record",
    "process_clip",
    "process_clip_safe",
    "skipped_record",
]
