"""Write a synthetic repository laid out exactly like the PhysicalAI-AV Hub repo (hermetic tests and the demo).

    features.csv                                   the real file (package data)
    clip_index.parquet                             index clip_id; clip_is_valid, chunk, split
    metadata/feature_presence.parquet              index clip_id; one bool column per feature
    metadata/data_collection.parquet               index clip_id; country, month, hour_of_day, platform_class, ...
                                                   (shared by the 2-4 clips of one drive: `drive_of_clips`)
    labels/egomotion/egomotion.chunk_NNNN.zip      <clip_id>.egomotion.parquet
    camera/<cam>/<cam>.chunk_NNNN.zip              <clip_id>.<cam>.mp4, .timestamps.parquet, .blurred_boxes.parquet
    README.md                                      what this is, and the resolved SynthConfig as JSON

Every path and member name comes from `features.csv`. Zips are flat and ZIP_STORED with fixed member dates, videos
are H.264 yuv420p with `+faststart` and bit-exact muxing, so the same config gives byte-identical files.
Each clip's egomotion and video come from the same analytic trajectory (`clip_truth`).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.av.catalog import Feature, chunk_file, member_name
from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import PipelineError
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.standins.frame_code import stamp_frame_index
from pipeline.standins.render import CameraModel, RoadRenderer
from pipeline.standins.synth_config import (
    CAMERA_GEOMETRY,
    DEFAULT_CAMERA,
    EGOMOTION_COLUMNS,
    EGOMOTION_FEATURE,
    SynthConfig,
    packaged_features_csv,
    repo_features,
)
from pipeline.standins.trajectory import Trajectory, scenario_for, scenario_kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthClip:
    """One generated clip."""

    clip_id: str  # UUID string
    chunk: int  # chunk id
    index_in_chunk: int  # 0-based position in the chunk
    clip_number: int  # chunk * clips_per_chunk + index_in_chunk: selects the scenario (see scenario_for)
    split: str  # train / val / test
    scenario: str  # scenario kind (trajectory.SCENARIO_KINDS)


@dataclass(frozen=True)
class SynthResult:
    """What `write_repo` wrote."""

    root: Path  # repository root
    config: SynthConfig  # the resolved config
    clips: tuple[SynthClip, ...]  # in chunk order
    files: tuple[str, ...] = field(default=())  # repo-relative paths of every file written, sorted

    @property
    def chunks(self) -> list[int]:
        return self.config.chunk_ids

    @property
    def clip_ids(self) -> list[str]:
        return [c.clip_id for c in self.clips]

    def clip(self, clip_id: str) -> SynthClip:
        for c in self.clips:
            if c.clip_id == clip_id:
                return c
        raise KeyError(f"clip {clip_id} is not in the synthetic repository {self.root}")

    def clips_of(self, chunk: int | None = None, split: str | None = None) -> list[SynthClip]:
        return [c for c in self.clips if (chunk is None or c.chunk == chunk) and (split is None or c.split == split)]

    def chunk_path(self, feature: str, chunk: int) -> Path:
        """Absolute path of `feature`'s file for `chunk` (from features.csv)."""
        return self.root / chunk_file(repo_features()[feature], chunk)

    def member(self, feature: str, alias: str, clip_id: str) -> str:
        """Zip member name of `clip_id` for `alias` of `feature` (from features.csv)."""
        return member_name(repo_features()[feature], alias, clip_id)


_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_EGO_MARGIN_US = 500_000  # egomotion rows start this much before 0 and end this much after the last frame
_COUNTRIES = ("United States", "Germany", "France", "Italy", "Spain", "Sweden", "Japan", "Poland", "Netherlands")
_PLATFORMS = ("hyperion_8", "hyperion_8.1")
_RADAR_CONFIGS = ("radar_config_a", "radar_config_b", None)


# --- deterministic per-clip draws -------------------------------------------------------------------------------


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, *keys])


def clip_uuid(seed: int, chunk: int, index_in_chunk: int) -> str:
    """The deterministic UUID (version 4 layout) of a clip."""
    return str(uuid.UUID(bytes=_rng(seed, chunk, index_in_chunk, 0xC11D).bytes(16), version=4))


def plan_clips(config: SynthConfig) -> list[SynthClip]:
    """The clips `config` generates, with ids, splits and scenarios (no I/O).

    Splits: a seeded shuffle of all clips; ~20 % test, ~30 % val, the rest train, with each split present as soon
    as there are 3 clips.
    """
    slots = [(chunk, i) for chunk in config.chunk_ids for i in range(config.clips_per_chunk)]
    n = len(slots)
    n_test = max(1, round(0.2 * n)) if n >= 2 else 0
    n_val = max(1, round(0.3 * n)) if n >= 3 else 0
    labels = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    order = _rng(config.seed, 0x5B11).permutation(n)
    split_of = {int(slot): labels[rank] for rank, slot in enumerate(order)}
    clips = []
    for k, (chunk, i) in enumerate(slots):
        number = chunk * config.clips_per_chunk + i
        clips.append(SynthClip(clip_uuid(config.seed, chunk, i), chunk, i, number, split_of[k], scenario_kind(number)))
    return clips


def clip_trajectory(config: SynthConfig, clip: SynthClip) -> Trajectory:
    """The analytic trajectory of `clip` (defined from 2 s before 0 to 2 s after the clip's end)."""
    return scenario_for(clip.clip_number, config.seed, duration_s=config.duration_s, margin_s=2.0)


def clip_truth(summary: SynthResult, clip_id: str) -> Trajectory:
    """Ground truth of a generated clip: its trajectory; `.at(t_us)` gives pose, velocity, speed, curvature."""
    return clip_trajectory(summary.config, summary.clip(clip_id))


def frame_timestamps_us(config: SynthConfig, clip: SynthClip, camera: str = DEFAULT_CAMERA) -> np.ndarray:
    """Frame capture times (int64 µs, (n_frames,)): `round(i * 1e6 / fps)` + a small offset + a few µs of jitter."""
    rng = _rng(config.seed, clip.chunk, clip.index_in_chunk, _camera_key(camera), 0x7135)
    n = config.n_frames
    offset = int(rng.integers(5, 200))  # the first frame lands a few µs after 0, never before
    jitter = rng.integers(-4, 5, size=n)
    return (np.round(np.arange(n) * 1e6 / config.fps).astype(np.int64) + offset + jitter).astype(np.int64)


def egomotion_timestamps_us(config: SynthConfig, clip: SynthClip) -> np.ndarray:
    """Egomotion sample times (int64 µs): ~`egomotion_hz` with jitter and occasional ~67 Hz gaps, from ~-0.5 s
    to ~0.5 s after the clip end."""
    rng = _rng(config.seed, clip.chunk, clip.index_in_chunk, 0xE60)
    period = 1e6 / config.egomotion_hz
    end = round(config.duration_s * 1e6) + _EGO_MARGIN_US
    start = -_EGO_MARGIN_US - int(rng.integers(0, 3000))
    n_max = int((end - start) / (0.9 * period)) + 10
    steps = period + np.clip(rng.normal(0.0, 0.01 * period, n_max), -0.04 * period, 0.04 * period)
    slow = rng.random(n_max) < 0.08
    steps[slow] = rng.uniform(1.2 * period, 1.5 * period, int(slow.sum()))
    t = start + np.concatenate([[0], np.cumsum(np.round(steps).astype(np.int64))])
    last = int(np.searchsorted(t, end)) + 1
    return t[:last].astype(np.int64)


def _camera_key(camera: str) -> int:
    return list(CAMERA_GEOMETRY).index(camera)


def egomotion_table(trajectory: Trajectory, timestamps_us: np.ndarray) -> pd.DataFrame:
    """The egomotion parquet table of the reference: columns `EGOMOTION_COLUMNS` (int64 timestamp, float64 rest)."""
    st = trajectory.at(timestamps_us)
    data = {"timestamp": np.asarray(timestamps_us, dtype=np.int64)}
    for col in EGOMOTION_COLUMNS[1:]:
        data[col] = np.asarray(getattr(st, col), dtype=np.float64)
    return pd.DataFrame(data, columns=list(EGOMOTION_COLUMNS))


# --- file writers -----------------------------------------------------------------------------------------------


def _parquet_bytes(df: pd.DataFrame, index: bool) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, engine="pyarrow", index=index)
    return buf.getvalue()


def _zip_member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def encode_mp4(
    frames, path: Path, width: int, height: int, fps: float, crf: int = 23, preset: str = "veryfast", gop: int = 30
) -> None:
    """Encode RGB frames ((H, W, 3) uint8, an iterable) to `path` as H.264 yuv420p constant-frame-rate mp4.

    Frame i gets pts i at time base 1/fps. Muxing is bit-exact (no creation time or version tags) and
    `+faststart` (which needs a real file: the muxer reopens it to move the index to the front); x264 runs with a
    fixed thread count, so the same frames give the same bytes on any machine.
    """
    import av

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart", "fflags": "+bitexact"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.gop_size = gop
        stream.codec_context.thread_count = 2
        stream.options = {"crf": str(crf), "preset": preset}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = stream.codec_context.time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _blurred_boxes(config: SynthConfig, clip: SynthClip, camera: str) -> pd.DataFrame:
    """A few anonymisation boxes (px) on random frames, as the real files list them (the video is not blurred)."""
    rng = _rng(config.seed, clip.chunk, clip.index_in_chunk, _camera_key(camera), 0xB0C5)
    n = int(rng.integers(0, 6))
    frame_index = np.sort(rng.integers(0, config.n_frames, n)).astype(np.int64)
    x1 = rng.uniform(0, 0.8 * config.width, n)
    y1 = rng.uniform(0.5 * config.height, 0.9 * config.height, n)
    w = rng.uniform(0.02, 0.1, n) * config.width
    h = rng.uniform(0.02, 0.08, n) * config.height
    return pd.DataFrame(
        {
            "frame_index": frame_index,
            "x1": np.round(x1, 1),
            "y1": np.round(y1, 1),
            "x2": np.round(np.minimum(x1 + w, config.width - 1), 1),
            "y2": np.round(np.minimum(y1 + h, config.height - 1), 1),
        }
    )


def drive_of_clips(config: SynthConfig, clips: list[SynthClip]) -> list[tuple[int, int]]:
    """(chunk, drive number in the chunk) of each clip: a chunk's clips, in order, are cut from drives of 2 to 4
    consecutive clips (seeded lengths), as the real clips are 20-s cuts of longer drives. Clips of one drive share
    their data_collection row (platform, country, month, hour of day)."""
    n = config.clips_per_chunk
    ends = {c.chunk: np.cumsum(_rng(config.seed, c.chunk, 0xD21E).integers(2, 5, n)) for c in clips}
    return [(c.chunk, int(np.searchsorted(ends[c.chunk], c.index_in_chunk, side="right"))) for c in clips]


def _clip_tables(config: SynthConfig, clips: list[SynthClip], features: dict[str, Feature]) -> dict[str, bytes]:
    """clip_index, feature_presence and data_collection parquet files, by repo path."""
    ids = pd.Index([c.clip_id for c in clips], name="clip_id", dtype="string")
    clip_index = pd.DataFrame(
        {
            "clip_is_valid": np.ones(len(clips), dtype=bool),
            "chunk": np.array([c.chunk for c in clips], dtype=np.int64),
            "split": pd.array([c.split for c in clips], dtype="string"),
        },
        index=ids,
    )
    present = {EGOMOTION_FEATURE, *config.cameras}
    presence = pd.DataFrame({name: np.full(len(clips), name in present) for name in features}, index=ids)
    rows = []
    for drive in drive_of_clips(config, clips):
        rng = _rng(config.seed, *drive, 0xDA7A)
        rows.append(
            {
                "country": _COUNTRIES[int(rng.integers(len(_COUNTRIES)))],
                "month": int(rng.integers(1, 13)),
                "hour_of_day": int(rng.integers(6, 20)),
                "platform_class": _PLATFORMS[int(rng.integers(len(_PLATFORMS)))],
                "radar_config": _RADAR_CONFIGS[int(rng.integers(len(_RADAR_CONFIGS)))],
            }
        )
    collection = pd.DataFrame(rows, index=ids).astype(
        {
            "country": "string",
            "month": "int64",
            "hour_of_day": "int64",
            "platform_class": "string",
            "radar_config": "string",
        }
    )
    return {
        "clip_index.parquet": _parquet_bytes(clip_index, index=True),
        "metadata/feature_presence.parquet": _parquet_bytes(presence, index=True),
        "metadata/data_collection.parquet": _parquet_bytes(collection, index=True),
    }


def _content_config(config: SynthConfig) -> dict:
    """The config fields that determine the content (not where it is written), so copies stay byte-identical."""
    d = config.to_json()
    del d["output_dir"], d["overwrite"], d["size"]  # size: applied to width and height
    return d


def _readme(config: SynthConfig) -> str:
    return (
        "# Synthetic PhysicalAI-Autonomous-Vehicles\n\n"
        "Generated by `pipeline synth`: the layout of nvidia/PhysicalAI-Autonomous-Vehicles, with rendered-road\n"
        "videos and egomotion from analytic trajectories. Not real data.\n\n"
        "```json\n" + json.dumps(_content_config(config), indent=2) + "\n```\n"
    )


def render_clip_frames(config: SynthConfig, clip: SynthClip, camera: str, timestamps_us: np.ndarray):
    """Yield the RGB frames ((H, W, 3) uint8) of `clip` for `camera`, rendered at `timestamps_us` (index-stamped
    unless `config.frame_code` is off)."""
    yaw_deg, hfov = CAMERA_GEOMETRY[camera]
    renderer = RoadRenderer(
        clip_trajectory(config, clip),
        CameraModel(config.width, config.height, hfov_deg=hfov, yaw_deg=yaw_deg),
        seed=config.seed * 1_000_003 + clip.clip_number,
    )
    for i, t in enumerate(timestamps_us):
        frame = renderer.render(int(t))
        yield stamp_frame_index(frame, i) if config.frame_code else frame


def write_repo(config: SynthConfig, progress: ProgressSink | None = None) -> SynthResult:
    """Generate the repository described by `config` at `config.output_dir` (built aside, then renamed in place).

    Raises `PipelineError` if the output directory exists and `config.overwrite` is false.
    """
    progress = progress or NullProgress()
    root = config.output_dir
    if root.exists() and not config.overwrite:
        raise PipelineError(f"--output-dir {root} already exists (pass --overwrite to replace it)")
    features = repo_features()
    missing = [f for f in (EGOMOTION_FEATURE, *config.cameras) if f not in features]
    if missing:
        raise PipelineError(f"features.csv has no feature(s) {missing}")
    clips = plan_clips(config)
    written: list[str] = []
    progress.start(f"synth {len(clips)} clips", total=len(clips))
    with atomic_dir(root, overwrite=config.overwrite) as tmp:

        def put(rel: str, data: bytes) -> None:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
            written.append(rel)

        put("features.csv", packaged_features_csv().encode("utf-8"))
        for rel, data in _clip_tables(config, clips, features).items():
            put(rel, data)
        put("README.md", _readme(config).encode("utf-8"))

        for chunk in config.chunk_ids:
            names = [EGOMOTION_FEATURE, *config.cameras]
            paths = {name: chunk_file(features[name], chunk) for name in names}
            for p in paths.values():
                (tmp / p).parent.mkdir(parents=True, exist_ok=True)
            zips = {name: zipfile.ZipFile(tmp / paths[name], "w", compression=zipfile.ZIP_STORED) for name in names}
            try:
                for clip in (c for c in clips if c.chunk == chunk):
                    _write_clip(config, clip, features, zips, scratch=tmp / ".scratch.mp4")
                    progress.advance(1)
            finally:
                for zf in zips.values():
                    zf.close()
            written.extend(paths.values())
    progress.finish()
    summary = SynthResult(root=root, config=config, clips=tuple(clips), files=tuple(sorted(written)))
    log.info("wrote %d clips in %d chunk(s) to %s", len(clips), config.n_chunks, root)
    return summary


def _write_clip(config: SynthConfig, clip: SynthClip, features: dict[str, Feature], zips: dict, scratch: Path) -> None:
    ego = features[EGOMOTION_FEATURE]
    table = egomotion_table(clip_trajectory(config, clip), egomotion_timestamps_us(config, clip))
    (alias,) = ego.clip_files_in_zip
    _zip_member(zips[EGOMOTION_FEATURE], member_name(ego, alias, clip.clip_id), _parquet_bytes(table, index=False))
    for camera in config.cameras:
        feature = features[camera]
        ts = frame_timestamps_us(config, clip, camera)
        frames = render_clip_frames(config, clip, camera, ts)
        encode_mp4(frames, scratch, config.width, config.height, config.fps, config.crf, config.preset, config.gop)
        video = scratch.read_bytes()
        scratch.unlink()
        data = {
            "video": video,
            "frame_timestamps": _parquet_bytes(pd.DataFrame({"timestamp": ts}), index=False),
            "blurred_boxes": _parquet_bytes(_blurred_boxes(config, clip, camera), index=False),
        }
        for alias in feature.clip_files_in_zip:
            if alias not in data:
                raise PipelineError(f"features.csv: feature {camera!r} has member {alias!r} the generator cannot make")
            _zip_member(zips[camera], member_name(feature, alias, clip.clip_id), data[alias])
