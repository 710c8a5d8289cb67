"""The clip jobs of a segment run (`list_jobs`: clip_index ∩ downloaded chunks, sharded and capped), what a run
did (`SegmentResult`), and where each clip's outputs live. No I/O beyond reading the dataset's catalog."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.av import catalog, drives
from pipeline.core.errors import PipelineError
from pipeline.stages.segment.config import EGOMOTION_FEATURE, SegmentConfig


@dataclass(frozen=True)
class ClipJob:
    """Everything a worker needs to process one clip (picklable)."""

    clip_id: str
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
    # Drive key from metadata/data_collection.parquet ("" = none) and the clip's start in the drive (-1 = unknown).
    drive: str = ""
    drive_offset_us: int = drives.NO_OFFSET
    # The cameras after the first, in order.
    more_cameras: tuple[CameraSource, ...] = ()


@dataclass(frozen=True)
class CameraSource:
    """One more camera of a clip: its feature name, zip and member names (picklable)."""

    camera: str
    camera_zip: Path
    video_member: str
    timestamps_member: str


@dataclass
class SegmentResult:
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


def segment_video_relpath(chunk: int, clip_id: str, index: int, camera: str | None = None) -> str:
    """The segment's mp4, relative to output_dir; a camera after the first adds its name (`..._00.<camera>.mp4`)."""
    suffix = f".{camera}" if camera else ""
    return f"video_segments/chunk_{chunk:04d}/{clip_id}/{clip_id}_{index:02d}{suffix}.mp4"


def list_jobs(config: SegmentConfig) -> list[ClipJob]:
    """The clips of this run: clip_index ∩ downloaded chunks (∩ --chunk), sorted, sharded, capped by max_clips."""
    ds = catalog.open_dataset_dir(config.input_dir)
    _clip_features(ds, config)
    names = " and ".join(config.camera_names)
    downloaded = sorted(
        set.intersection(*(set(ds.downloaded_chunks(f)) for f in (*config.camera_names, EGOMOTION_FEATURE)))
    )
    if config.chunks:
        catalog.validate_chunk_ids(list(config.chunks), ds.clip_index.chunks, flag="--chunk")
        missing = [c for c in config.chunks if c not in downloaded]
        if missing:
            raise PipelineError(
                f"--chunk: chunk(s) {catalog.format_ranges(missing)} have no {names} and egomotion zips in "
                f"{config.input_dir} (downloaded: {catalog.format_ranges(downloaded) or 'none'})"
            )
        chunks = list(config.chunks)
    else:
        chunks = downloaded
        if not chunks:
            raise PipelineError(f"--input-dir {config.input_dir}: no chunk has both {names} and egomotion zips")
    jobs = clip_jobs(ds, config, chunks)
    i, n = config.shard
    jobs = jobs[i::n]
    return jobs if config.max_clips is None else jobs[: config.max_clips]


def _clip_features(ds: catalog.DatasetDir, config: SegmentConfig) -> tuple[catalog.Feature, catalog.Feature]:
    """The first camera's and the egomotion features of `features.csv`; PipelineError if one (or one of
    `cameras`) is not there."""
    flag = "--cameras" if config.cameras else "--camera"
    for name in config.camera_names:
        camera = ds.features.get(name)
        if camera is None or not {"video", "frame_timestamps"} <= set(camera.clip_files_in_zip):
            cams = [f.name for f in ds.features.values() if "video" in f.clip_files_in_zip]
            raise PipelineError(f"{flag} {name!r}: not a camera feature of features.csv (valid: {', '.join(cams)})")
    if EGOMOTION_FEATURE not in ds.features:
        raise PipelineError(f"{config.input_dir / catalog.FEATURES_CSV}: no {EGOMOTION_FEATURE!r} feature")
    return ds.features[config.camera], ds.features[EGOMOTION_FEATURE]


def _more_cameras(ds: catalog.DatasetDir, config: SegmentConfig, chunk: int, clip_id: str) -> tuple[CameraSource, ...]:
    """The clip's cameras after the first."""
    return tuple(
        CameraSource(
            camera=name,
            camera_zip=ds.chunk_path(name, chunk),
            video_member=catalog.member_name(ds.features[name], "video", clip_id),
            timestamps_member=catalog.member_name(ds.features[name], "frame_timestamps", clip_id),
        )
        for name in config.camera_names[1:]
    )


def clip_jobs(ds: catalog.DatasetDir, config: SegmentConfig, chunks: Sequence[int]) -> list[ClipJob]:
    """The jobs of every clip of `chunks` (of `config.split`, if set), sorted by (chunk, clip id).

    Needs only `features.csv` and `clip_index.parquet`: the chunk zips need not be there yet.
    """
    camera, egomotion = _clip_features(ds, config)
    table = ds.clip_index.table
    table = table[table["chunk"].isin(list(chunks))]
    if config.split is not None:
        table = table[table["split"] == config.split]
    rows = sorted(zip(table["chunk"].astype(int), table.index.astype(str), strict=True))
    keys = drives.read_drive_keys(ds.root / drives.DATA_COLLECTION_PARQUET)
    no_key = drives.DriveKey("")
    return [
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
            drive=keys.get(clip_id, no_key).key,
            drive_offset_us=keys.get(clip_id, no_key).offset_us,
            more_cameras=_more_cameras(ds, config, chunk, clip_id),
        )
        for chunk, clip_id in rows
    ]
