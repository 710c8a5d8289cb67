"""`pipeline segment --cameras a,b,c`: every camera cut on the same windows from its own frame clock, checked with
the frame codes the synthetic repository stamps on each frame."""

import io
import json
import zipfile

import av
import numpy as np
import pandas as pd
import pytest

from pipeline.av.catalog import read_features
from pipeline.core.errors import PipelineError
from pipeline.stages.segment.config import SegmentConfig
from pipeline.stages.segment.jobs import list_jobs
from pipeline.standins.frame_code import decode_frame_index
from tests.cli_contract import assert_one_line_error, run_in_process
from tests.fixtures.segment_fixtures import make_segments
from tests.fixtures.synthetic_fixtures import make_synthetic_repo

CAMERAS = ("camera_cross_left_120fov", "camera_front_wide_120fov", "camera_rear_tele_30fov")


@pytest.fixture(scope="module")
def three_cameras(tmp_path_factory):
    root = tmp_path_factory.mktemp("cameras")
    repo = make_synthetic_repo(root, n_chunks=1, clips_per_chunk=1, duration_s=4.0, cameras=CAMERAS)
    out = root / "segments"
    make_segments(repo.root, out, cameras=CAMERAS, size=None, stride_s=0.5)
    return repo, out


def frame_timestamps(repo, camera: str, clip_id: str) -> np.ndarray:
    """The camera's frame timestamps, read with zipfile + pandas (independent of the stage)."""
    with zipfile.ZipFile(repo.chunk_path(camera, 0)) as zf:
        df = pd.read_parquet(io.BytesIO(zf.read(f"{clip_id}.{camera}.timestamps.parquet")))
    return df["timestamp"].to_numpy()


def frame_codes(path) -> list[int]:
    with av.open(str(path)) as container:
        return [decode_frame_index(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def test_each_camera_holds_the_frames_of_its_own_clock_in_the_window(three_cameras):
    repo, out = three_cameras
    segments = json.loads((out / "metadata" / "segments.json").read_text())
    assert len(segments) == 5  # 1-s windows every 0.5 s of a 4-s clip with 1 s of horizon
    clip_id = segments[0]["clip_id"]
    clocks = {c: frame_timestamps(repo, c, clip_id) for c in CAMERAS}
    assert len({int(ts[0]) for ts in clocks.values()}) == len(CAMERAS)  # a different offset per camera
    for rec in segments:
        assert rec["cameras"] == list(CAMERAS) and rec["camera"] == CAMERAS[0]
        assert rec["video"] == rec["videos"][0] and len(set(rec["videos"])) == len(CAMERAS)
        for camera, video in zip(CAMERAS, rec["videos"], strict=True):
            ts = clocks[camera]
            half = int(np.median(np.diff(ts))) // 2
            inside = np.flatnonzero((ts >= rec["start_us"] - half) & (ts < rec["end_us"] - half))
            assert frame_codes(out / video) == inside.tolist(), (camera, rec["id"])


def test_the_settings_record_every_camera(three_cameras):
    _, out = three_cameras
    config = json.loads((out / "metadata" / "segment_config.json").read_text())
    assert (config["camera"], config["cameras"], config["targets"]["cameras"]) == (
        CAMERAS[0],
        list(CAMERAS),
        list(CAMERAS),
    )


def test_a_camera_not_in_features_csv_is_refused(three_cameras):
    repo, out = three_cameras
    config = SegmentConfig(input_dir=repo.root, output_dir=out, cameras="camera_front_wide_120fov,camera_bogus")
    with pytest.raises(PipelineError, match="^--cameras 'camera_bogus': not a camera feature of features.csv"):
        list_jobs(config)


def test_every_camera_must_be_downloaded(three_cameras, tmp_path):
    repo, _ = three_cameras
    features = read_features(repo.root / "features.csv").values()
    cameras = [f.name for f in features if "video" in f.clip_files_in_zip and f.name not in CAMERAS]
    config = SegmentConfig(input_dir=repo.root, output_dir=tmp_path, cameras=(CAMERAS[0], cameras[0]))
    with pytest.raises(PipelineError, match=f"no chunk has both {CAMERAS[0]} and {cameras[0]} and egomotion"):
        list_jobs(config)


def test_camera_and_cameras_must_agree(tmp_path):
    with pytest.raises(PipelineError, match="^--camera camera_rear_tele_30fov and --cameras"):
        SegmentConfig(input_dir=tmp_path, output_dir=tmp_path, camera="camera_rear_tele_30fov", cameras=CAMERAS)


def test_frames_per_camera_are_the_frames_nearest_the_alpamayo_times(three_cameras, tmp_path):
    repo, _ = three_cameras
    out = tmp_path / "four_frames"
    make_segments(repo.root, out, cameras=CAMERAS, size=None, frames_per_camera=4, frame_spacing_s=0.1)
    segments = json.loads((out / "metadata" / "segments.json").read_text())
    assert len(segments) == 3
    clocks = {c: frame_timestamps(repo, c, segments[0]["clip_id"]) for c in CAMERAS}
    for rec in segments:
        assert rec["frame_count"] == 4
        for camera, video in zip(CAMERAS, rec["videos"], strict=True):
            ts = clocks[camera]
            half = int(np.median(np.diff(ts))) // 2
            before_end = ts[ts < rec["end_us"] - half]
            times = rec["end_us"] - np.array([300_000, 200_000, 100_000, 0])
            nearest = [int(np.argmin(np.abs(before_end - t))) for t in times]
            assert frame_codes(out / video) == nearest, (camera, rec["id"])
            assert nearest[-1] == len(before_end) - 1  # the last frame is the window's last


def test_the_cli_names_a_bad_camera(three_cameras, capsys, tmp_path):
    repo, _ = three_cameras
    args = ("--input-dir", repo.root, "--output-dir", tmp_path / "o", "--cameras", "camera_front_wide_120fov,nope")
    assert_one_line_error(run_in_process(capsys, "segment", *args), "--cameras", "'nope'", "features.csv")
