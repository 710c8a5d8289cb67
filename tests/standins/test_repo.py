"""The synthetic repository: layout and schemas as the reference describes, readable by PyAV, OpenCV and NVIDIA's
devkit, consistent with the analytic ground truth, and byte-identical for the same config."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import PipelineError
from pipeline.standins.frame_code import code_region, decode_frame_index
from pipeline.standins.repo import clip_truth, plan_clips, render_clip_frames
from pipeline.standins.synth_config import EGOMOTION_COLUMNS, SynthConfig
from pipeline.standins.trajectory import SCENARIO_KINDS
from tests.fixtures.synthetic_fixtures import make_synthetic_repo

CAMERA = "camera_front_wide_120fov"
REFERENCE_FEATURES = Path("/work/shared/reference/features.csv")


def _features(root: Path) -> dict[str, dict]:
    """features.csv read independently of the pipeline (csv + json)."""
    with open(root / "features.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        r["feature"]: {"chunk_path": r["chunk_path"], "members": json.loads(r["clip_files_in_zip"] or "{}")}
        for r in rows
    }


def _member(root: Path, feature: str, chunk: int, alias: str, clip_id: str) -> bytes:
    spec = _features(root)[feature]
    with zipfile.ZipFile(root / spec["chunk_path"].format(chunk_id=chunk)) as zf:
        return zf.read(spec["members"][alias].format(clip_id=clip_id))


def _parquet(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


def test_layout_follows_features_csv(synthetic_repo):
    root = synthetic_repo.root
    assert (root / "features.csv").read_bytes() == (
        REFERENCE_FEATURES.read_bytes() if REFERENCE_FEATURES.exists() else (root / "features.csv").read_bytes()
    )
    features = _features(root)
    expected = {"features.csv", "clip_index.parquet", "README.md"}
    expected |= {"metadata/feature_presence.parquet", "metadata/data_collection.parquet"}
    for chunk in (0, 1):
        for feature in ("egomotion", CAMERA):
            expected.add(features[feature]["chunk_path"].format(chunk_id=chunk))
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk == expected
    assert set(synthetic_repo.files) == expected
    for chunk in (0, 1):
        clip_ids = [c.clip_id for c in synthetic_repo.clips if c.chunk == chunk]
        for feature in ("egomotion", CAMERA):
            spec = features[feature]
            with zipfile.ZipFile(root / spec["chunk_path"].format(chunk_id=chunk)) as zf:
                infos = zf.infolist()
                want = [t.format(clip_id=c) for c in clip_ids for t in spec["members"].values()]
                assert [i.filename for i in infos] == want  # flat, one set of members per clip
                assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
                assert all("/" not in i.filename for i in infos)


def test_clip_index_and_metadata(synthetic_repo):
    root = synthetic_repo.root
    index = pd.read_parquet(root / "clip_index.parquet")
    assert index.index.name == "clip_id" and list(index.columns) == ["clip_is_valid", "chunk", "split"]
    assert index["clip_is_valid"].dtype == bool and index["chunk"].dtype == np.int64
    assert index["clip_is_valid"].all()
    assert sorted(index["chunk"].tolist()) == [0, 0, 0, 1, 1, 1]
    assert set(index["split"]) == {"train", "val", "test"}
    for clip_id in index.index:
        assert str(uuid.UUID(clip_id)) == clip_id
    assert index.index.tolist() == synthetic_repo.clip_ids
    assert {c.scenario for c in synthetic_repo.clips} == set(SCENARIO_KINDS)

    presence = pd.read_parquet(root / "metadata/feature_presence.parquet")
    assert presence.index.tolist() == index.index.tolist()
    assert list(presence.columns) == list(_features(root))
    assert all(dtype == np.bool_ for dtype in presence.dtypes)
    assert presence["egomotion"].all() and presence[CAMERA].all()
    assert not presence["lidar_top_360fov"].any() and not presence["camera_rear_tele_30fov"].any()

    collection = pd.read_parquet(root / "metadata/data_collection.parquet")
    assert collection.index.tolist() == index.index.tolist()
    assert list(collection.columns) == ["country", "month", "hour_of_day", "platform_class", "radar_config"]
    assert collection["hour_of_day"].dtype == np.int64 and collection["hour_of_day"].between(0, 23).all()
    assert collection["month"].between(1, 12).all()


def test_egomotion_schema_timing_and_truth(synthetic_repo):
    root = synthetic_repo.root
    for clip in synthetic_repo.clips:
        df = _parquet(_member(root, "egomotion", clip.chunk, "egomotion", clip.clip_id))
        assert tuple(df.columns) == EGOMOTION_COLUMNS
        assert df["timestamp"].dtype == np.int64
        assert all(df[c].dtype == np.float64 for c in EGOMOTION_COLUMNS[1:])
        t = df["timestamp"].to_numpy()
        dt = np.diff(t)
        assert t[0] < -400_000 and t[-1] > 20_400_000
        assert dt.min() >= 9_000 and dt.max() <= 15_100  # 100 Hz, jittered, down to ~67 Hz
        assert 95 <= len(t) / ((t[-1] - t[0]) * 1e-6) <= 100
        assert (dt > 11_000).any() and len(np.unique(dt)) > 50
        truth = clip_truth(synthetic_repo, clip.clip_id).at(t)
        for col in EGOMOTION_COLUMNS[1:]:
            np.testing.assert_array_equal(df[col].to_numpy(), getattr(truth, col), err_msg=col)
        # Self-consistency of the table alone: curvature = cross(v, a) / |v|^3; speed; trapezoid path.
        v = np.hypot(df.vx, df.vy).to_numpy()
        moving = v > 1.0
        kappa = (df.vx * df.ay - df.vy * df.ax).to_numpy() / np.maximum(v, 1e-9) ** 3
        np.testing.assert_allclose(kappa[moving], df.curvature.to_numpy()[moving], atol=1e-9)
        x = np.concatenate([[0], np.cumsum(0.5 * (df.vx[1:].to_numpy() + df.vx[:-1].to_numpy()) * dt * 1e-6)])
        np.testing.assert_allclose(x - x[0], df.x - df.x.iloc[0], atol=0.05)
        row0 = int(np.argmin(np.abs(t)))
        assert abs(df.x.iloc[row0]) < 0.3 and abs(df.y.iloc[row0]) < 0.01  # anchor = pose at t = 0


def test_left_and_right_turn_curvature_signs(synthetic_repo):
    root = synthetic_repo.root
    by_kind = {c.scenario: c for c in synthetic_repo.clips}
    for kind, sign in (("left_turn", 1), ("right_turn", -1)):
        clip = by_kind[kind]
        df = _parquet(_member(root, "egomotion", clip.chunk, "egomotion", clip.clip_id))
        peak = df.curvature.to_numpy()[np.argmax(np.abs(df.curvature.to_numpy()))]
        assert np.sign(peak) == sign and abs(peak) >= 0.04
        assert np.sign(df.y.iloc[-1]) == sign


@pytest.fixture(scope="module")
def first_clip_video(synthetic_repo):
    clip = synthetic_repo.clips[0]
    root = synthetic_repo.root
    return (
        clip,
        _member(root, CAMERA, clip.chunk, "video", clip.clip_id),
        _parquet(_member(root, CAMERA, clip.chunk, "frame_timestamps", clip.clip_id)),
    )


def test_video_decodes_with_pyav_and_matches_timestamps(first_clip_video):
    clip, mp4, ts = first_clip_video
    assert list(ts.columns) == ["timestamp"] and ts["timestamp"].dtype == np.int64
    t = ts["timestamp"].to_numpy()
    assert len(t) == 600 and (np.diff(t) > 0).all() and 0 <= t[0] < 1_000
    assert not (np.diff(t) == np.diff(t)[0]).all() and np.abs(np.diff(t) - 1e6 / 30).max() < 20
    assert mp4[4:8] == b"ftyp" and mp4.find(b"moov") < mp4.find(b"mdat")  # faststart: index before the data
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 30
        assert stream.codec_context.pix_fmt == "yuv420p"
        pts, codes = [], []
        for frame in container.decode(stream):
            pts.append(float(frame.pts * frame.time_base))
            codes.append(decode_frame_index(frame.to_ndarray(format="rgb24")))
        assert (frame.width, frame.height) == (256, 144)
    assert codes == list(range(600))
    np.testing.assert_allclose(np.array(pts) * 1e6, t - t[0], atol=50)  # pts agree with the timestamps


def test_video_decodes_with_opencv(first_clip_video, tmp_path):
    clip, mp4, _ = first_clip_video
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4)
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n, shapes, codes = 0, set(), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        shapes.add(bgr.shape)
        if n % 97 == 0:
            codes.append((n, decode_frame_index(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))))
        n += 1
    cap.release()
    assert n == 600 and shapes == {(144, 256, 3)}
    assert all(i == code for i, code in codes)


def test_devkit_reads_egomotion_and_frames(synthetic_repo):
    """NVIDIA's devkit classes (an independent reader) on the generated members agree with the ground truth."""
    from physical_ai_av import egomotion as pa_egomotion
    from physical_ai_av import video as pa_video

    root = synthetic_repo.root
    clip = next(c for c in synthetic_repo.clips if c.scenario == "left_turn")
    df = _parquet(_member(root, "egomotion", clip.chunk, "egomotion", clip.clip_id))
    interp = pa_egomotion.EgomotionState.from_egomotion_df(df).create_interpolator(df["timestamp"].to_numpy())
    query = np.array([0, 3_456_789, 9_000_000, 15_500_000, 19_900_000], dtype=np.int64)
    state = interp(query)
    truth = clip_truth(synthetic_repo, clip.clip_id).at(query)
    np.testing.assert_allclose(np.linalg.norm(state.velocity, axis=1), truth.speed, atol=0.01)
    np.testing.assert_allclose(state.curvature[:, 0], truth.curvature, atol=2e-4)
    np.testing.assert_allclose(state.pose.translation[:, :2], np.stack([truth.x, truth.y], 1), atol=1e-3)
    np.testing.assert_allclose(state.pose.rotation.as_euler("xyz")[:, 2], truth.yaw, atol=1e-4)

    ts = _parquet(_member(root, CAMERA, clip.chunk, "frame_timestamps", clip.clip_id))["timestamp"].to_numpy()
    reader = pa_video.SeekVideoReader(io.BytesIO(_member(root, CAMERA, clip.chunk, "video", clip.clip_id)), ts)
    try:
        want = np.array([5, 31, 299, 598])
        images, got_ts = reader.decode_images_from_timestamps(ts[want] + 10)
    finally:
        reader.close()
    assert [decode_frame_index(im) for im in images] == want.tolist()
    np.testing.assert_array_equal(got_ts, ts[want])


def test_blurred_boxes_schema(synthetic_repo):
    clip = synthetic_repo.clips[1]
    boxes = _parquet(_member(synthetic_repo.root, CAMERA, clip.chunk, "blurred_boxes", clip.clip_id))
    assert list(boxes.columns) == ["frame_index", "x1", "y1", "x2", "y2"]
    assert boxes["frame_index"].dtype == np.int64
    assert ((boxes.x1 < boxes.x2) & (boxes.y1 < boxes.y2)).all() and boxes.frame_index.between(0, 599).all()


def test_same_config_gives_identical_bytes(tmp_path):
    kw = {"n_chunks": 1, "clips_per_chunk": 3, "duration_s": 1.0, "first_chunk": 7, "seed": 5}
    a = make_synthetic_repo(tmp_path / "a", **kw)
    b = make_synthetic_repo(tmp_path / "b", **kw)
    assert a.files == b.files and len(a.files) == 7
    for rel in a.files:
        assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    assert a.clip_ids == b.clip_ids
    other = make_synthetic_repo(tmp_path / "c", **{**kw, "seed": 6})
    assert set(other.clip_ids).isdisjoint(a.clip_ids)
    assert [c.chunk for c in a.clips] == [7, 7, 7]


def test_config_validation_and_existing_output(tmp_path):
    with pytest.raises(PipelineError, match="--size"):
        SynthConfig(tmp_path / "x", width=255)
    with pytest.raises(PipelineError, match="--camera"):
        SynthConfig(tmp_path / "x", cameras=("camera_nope",))
    with pytest.raises(PipelineError, match="--chunks"):
        SynthConfig(tmp_path / "x", n_chunks=0)
    (tmp_path / "exists").mkdir()
    with pytest.raises(PipelineError, match="already exists"):
        make_synthetic_repo(tmp_path, output_dir=tmp_path / "exists", duration_s=0.5, clips_per_chunk=1)


def test_extra_cameras_are_rendered_and_flagged(tmp_path):
    cameras = (CAMERA, "camera_rear_tele_30fov")
    repo = make_synthetic_repo(tmp_path, n_chunks=1, clips_per_chunk=1, duration_s=0.3, cameras=cameras)
    clip = repo.clips[0]
    presence = pd.read_parquet(repo.root / "metadata/feature_presence.parquet")
    assert presence.loc[clip.clip_id, list(cameras)].all() and not presence.loc[clip.clip_id, "lidar_top_360fov"]
    first = {}
    for camera in cameras:
        with av.open(io.BytesIO(_member(repo.root, camera, 0, "video", clip.clip_id))) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert [decode_frame_index(f) for f in frames] == list(range(9))
        first[camera] = frames[0].astype(np.int32)
    assert np.abs(first[cameras[0]] - first[cameras[1]]).mean() > 10  # a different view, not a copy


def test_frame_code_can_be_left_out(tmp_path):
    stamped = SynthConfig(tmp_path / "a", clips_per_chunk=1, duration_s=0.2)
    plain = SynthConfig(tmp_path / "b", clips_per_chunk=1, duration_s=0.2, frame_code=False)
    clip = plan_clips(stamped)[0]
    times = np.arange(6) * 33_333
    x0, y0, x1, y1 = code_region(stamped.width, stamped.height)
    pairs = zip(
        render_clip_frames(stamped, clip, CAMERA, times), render_clip_frames(plain, clip, CAMERA, times), strict=True
    )
    for i, (a, b) in enumerate(pairs):
        assert decode_frame_index(a) == i
        differs = np.argwhere((a != b).any(axis=2))
        assert differs.size and differs.min(axis=0).tolist() == [y0, x0] and (differs.max(axis=0) < [y1, x1]).all()
        assert len(differs) > 0.5 * (y1 - y0) * (x1 - x0)  # the code covers the region; the plain frame does not
