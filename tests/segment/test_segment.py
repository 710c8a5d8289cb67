"""The segment stage on the synthetic repository: videos read back with OpenCV, targets against the analytic truth
and the devkit, overlap from one decode, the contract of segments.json / manifest.json."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.av import egomotion as ego
from pipeline.av import video
from pipeline.standins.frame_code import decode_frame_index
from pipeline.standins.repo import clip_truth
from pipeline.standins.synth_config import DEFAULT_CAMERA
from tests.fixtures.segment_fixtures import make_segments
from tests.reference import planar_curvature

SEGMENT_KEYS = {
    "id",
    "clip_id",
    "chunk",
    "split",
    "camera",
    "segment_index",
    "start_us",
    "end_us",
    "video",
    "frame_count",
    "first_frame_us",
    "last_frame_us",
    "fps",
    "width",
    "height",
    "velocity",
    "curvature",
    "history_velocity",
    "history_curvature",
    "speed_mean_mps",
    "speed_last_mps",
    "curvature_mean",
    "curvature_last",
    "drive",
    "drive_offset_us",
    "future_xyh",
    "history_xyh",
    "cameras",
    "videos",
}


def load_segments(out: Path) -> list[dict]:
    return json.loads((out / "metadata" / "segments.json").read_text())


def member_table(repo, feature: str, alias: str, clip) -> pd.DataFrame:
    """Read a parquet member straight with zipfile + pandas (independent of pipeline.av.video)."""
    with zipfile.ZipFile(repo.chunk_path(feature, clip.chunk)) as zf:
        return pd.read_parquet(io.BytesIO(zf.read(repo.member(feature, alias, clip.clip_id))))


def read_with_opencv(path: Path) -> tuple[list[int], tuple[int, int], list[float]]:
    """(frame-index codes, (width, height), positions in ms) of every frame, decoded by OpenCV."""
    cap = cv2.VideoCapture(str(path))
    codes, times, size = [], [], (0, 0)
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        times.append(cap.get(cv2.CAP_PROP_POS_MSEC))
        size = (bgr.shape[1], bgr.shape[0])
        codes.append(decode_frame_index(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    cap.release()
    return codes, size, times


def test_contract_and_counts(segments_dir, synthetic_repo):
    segments = load_segments(segments_dir)
    manifest = json.loads((segments_dir / "metadata" / "manifest.json").read_text())
    assert [c["status"] for c in manifest["clips"]] == ["done"] * len(synthetic_repo.clips)
    assert {c["clip_id"] for c in manifest["clips"]} == set(synthetic_repo.clip_ids)
    assert all(c["segments"] == 19 and c["reason"] is None for c in manifest["clips"])
    assert len(segments) == 19 * len(synthetic_repo.clips)
    for rec in segments:
        assert set(rec) == SEGMENT_KEYS
        clip = synthetic_repo.clip(rec["clip_id"])
        assert (rec["chunk"], rec["split"], rec["camera"]) == (clip.chunk, clip.split, DEFAULT_CAMERA)
        assert rec["id"] == f"{rec['clip_id']}_{rec['segment_index']:02d}"
        assert rec["video"] == f"video_segments/chunk_{clip.chunk:04d}/{clip.clip_id}/{rec['id']}.mp4"
        assert (segments_dir / rec["video"]).is_file()
        assert rec["end_us"] - rec["start_us"] == 1_000_000
        assert (rec["frame_count"], rec["width"], rec["height"]) == (30, 224, 128)
        assert rec["fps"] == pytest.approx(30.0, rel=1e-3)
        assert all(len(rec[k]) == 30 for k in ("velocity", "curvature", "history_velocity", "history_curvature"))
        assert (rec["future_xyh"], rec["history_xyh"]) == ([], [])  # motion targets only
        assert (rec["cameras"], rec["videos"]) == ([DEFAULT_CAMERA], [rec["video"]])
    # The drive key: the clip's data_collection row, read here with pandas (no drive id, so no offset).
    rows = pd.read_parquet(synthetic_repo.root / "metadata" / "data_collection.parquet")
    columns = ("platform_class", "country", "month", "hour_of_day")
    drive = {c: "|".join(f"{k}={rows.loc[c, k]}" for k in columns) for c in synthetic_repo.clip_ids}
    assert all((rec["drive"], rec["drive_offset_us"]) == (drive[rec["clip_id"]], -1) for rec in segments)
    by_clip = {}
    for rec in segments:
        by_clip.setdefault(rec["clip_id"], []).append(rec["segment_index"])
    assert all(v == list(range(19)) for v in by_clip.values())
    table = pd.read_parquet(segments_dir / "metadata" / "segments.parquet")
    assert table["id"].tolist() == [r["id"] for r in segments]
    np.testing.assert_array_equal(np.stack(table["velocity"].to_numpy()), [r["velocity"] for r in segments])
    assert json.loads((segments_dir / "metadata" / "segment_config.json").read_text()) == manifest["config"]
    assert not list(segments_dir.rglob("*.tmp"))


def test_videos_hold_exactly_the_source_frames(segments_dir, synthetic_repo):
    segments = load_segments(segments_dir)
    for clip in synthetic_repo.clips[:2]:
        ts = member_table(synthetic_repo, DEFAULT_CAMERA, "frame_timestamps", clip)["timestamp"].to_numpy()
        dt = np.median(np.diff(ts))
        for rec in [r for r in segments if r["clip_id"] == clip.clip_id]:
            codes, size, times_ms = read_with_opencv(segments_dir / rec["video"])
            assert size == (224, 128)
            # The source frames of the window: nominal times (jitter aside) in [start, end).
            expected = np.flatnonzero((ts >= rec["start_us"] - dt / 2) & (ts < rec["end_us"] - dt / 2)).tolist()
            assert len(expected) == 30
            assert codes == expected, rec["id"]
            assert rec["first_frame_us"] == ts[expected[0]] and rec["last_frame_us"] == ts[expected[-1]]
            # Presentation times are the source timestamps relative to the first frame (OpenCV reads ms).
            np.testing.assert_allclose(np.array(times_ms) * 1000, ts[expected] - ts[expected[0]], atol=1.0)


def test_presentation_timestamps_are_exact(segments_dir, synthetic_repo):
    import av

    clip = synthetic_repo.clips[0]
    ts = member_table(synthetic_repo, DEFAULT_CAMERA, "frame_timestamps", clip)["timestamp"].to_numpy()
    rec = next(r for r in load_segments(segments_dir) if r["clip_id"] == clip.clip_id and r["segment_index"] == 7)
    with av.open(str(segments_dir / rec["video"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        pts_us = [int(round(f.pts * f.time_base * 1_000_000)) for f in container.decode(stream)]
    first = int(np.searchsorted(ts, rec["first_frame_us"]))
    np.testing.assert_array_equal(np.array(pts_us) + rec["first_frame_us"], ts[first : first + 30])
    data = (segments_dir / rec["video"]).read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # faststart


def test_targets_match_truth_and_devkit(segments_dir, synthetic_repo):
    from physical_ai_av.egomotion import EgomotionState

    segments = load_segments(segments_dir)
    for clip in synthetic_repo.clips:
        recs = [r for r in segments if r["clip_id"] == clip.clip_id]
        end = np.array([r["end_us"] for r in recs])
        fut = ego.future_sample_times(end, 1_000_000, 30)
        hist = ego.history_sample_times(end, 1_000_000, 30)
        ours_v = np.array([r["velocity"] for r in recs])
        ours_k = np.array([r["curvature"] for r in recs])
        ours_hv = np.array([r["history_velocity"] for r in recs])
        # Analytic truth (linear interpolation of ~100 Hz samples of a smooth motion).
        truth = clip_truth(synthetic_repo, clip.clip_id)
        true_v = truth.at(fut.ravel()).speed.reshape(fut.shape)
        true_k = truth.at(fut.ravel()).curvature.reshape(fut.shape)
        np.testing.assert_allclose(ours_v, true_v, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(ours_k, true_k, rtol=1e-3, atol=1e-3 * max(np.abs(true_k).max(), 1e-3))
        np.testing.assert_allclose(ours_hv, truth.at(hist.ravel()).speed.reshape(hist.shape), rtol=1e-3, atol=1e-3)
        # The devkit's own interpolator on the same egomotion member.
        df = member_table(synthetic_repo, "egomotion", "egomotion", clip)
        interp = EgomotionState.from_egomotion_df(df).create_interpolator(df["timestamp"].to_numpy())
        state = interp(fut.ravel())
        np.testing.assert_allclose(ours_v, np.linalg.norm(state.velocity, axis=-1).reshape(fut.shape), rtol=1e-6)
        np.testing.assert_allclose(ours_k, state.curvature.reshape(fut.shape), rtol=1e-6, atol=1e-12)
        assert [r["speed_last_mps"] for r in recs] == [r["history_velocity"][-1] for r in recs]


def test_left_turn_is_positive_curvature(segments_dir, synthetic_repo):
    segments = load_segments(segments_dir)
    by_kind = {c.scenario: c for c in synthetic_repo.clips}
    for kind, sign in (("left_turn", 1), ("right_turn", -1)):
        clip = by_kind[kind]
        df = member_table(synthetic_repo, "egomotion", "egomotion", clip)
        # The curvature column agrees in sign with the path's own bending (v x a) wherever it turns.
        k_path = planar_curvature(df[["vx", "vy"]].to_numpy(), df[["ax", "ay"]].to_numpy())
        turning = np.abs(df["curvature"].to_numpy()) > 1e-3
        assert turning.any()
        assert (np.sign(k_path[turning]) == np.sign(df["curvature"].to_numpy()[turning])).all()
        peak = max((r for r in segments if r["clip_id"] == clip.clip_id), key=lambda r: abs(r["curvature_mean"]))
        assert np.sign(peak["curvature_mean"]) == sign and abs(peak["curvature_mean"]) > 1e-3


def test_stride_half_second_overlaps_from_one_decode(synthetic_repo, tmp_path, monkeypatch):
    # The cut runs in a forked pool worker: the spy there appends to a file.
    opened = tmp_path / "opened.txt"
    real_open = video.open_video

    def spy(source):
        with opened.open("a") as log:
            log.write(f"{source}\n")
        return real_open(source)

    monkeypatch.setattr(video, "open_video", spy)
    out = tmp_path / "half"
    summary = make_segments(synthetic_repo.root, out, stride_s=0.5, max_clips=1, size=(128, 72))
    assert summary.segments == 37 and len(opened.read_text().splitlines()) == 1
    segments = load_segments(out)
    codes = [read_with_opencv(out / r["video"])[0] for r in segments[:3]]
    assert all(len(c) == 30 for c in codes)
    assert codes[1][:15] == codes[0][15:] and codes[2][:15] == codes[1][15:]
    assert [r["start_us"] - segments[0]["start_us"] for r in segments[:3]] == [0, 500_000, 1_000_000]


def test_cut_interrupted_leaves_no_file(synthetic_repo, tmp_path, monkeypatch):
    clip = synthetic_repo.clips[0]
    ts = member_table(synthetic_repo, DEFAULT_CAMERA, "frame_timestamps", clip)["timestamp"].to_numpy()
    member = video.locate_member(
        synthetic_repo.chunk_path(DEFAULT_CAMERA, clip.chunk),
        synthetic_repo.member(DEFAULT_CAMERA, "video", clip.clip_id),
    )
    calls = []
    real_encode = video._encode

    def encode_then_interrupt(seg, frame):
        calls.append(1)
        if len(calls) == 75:
            raise KeyboardInterrupt
        real_encode(seg, frame)

    monkeypatch.setattr(video, "_encode", encode_then_interrupt)
    requests = [video.SegmentRequest(i, 30 * i, 30 * i + 30, tmp_path / f"s{i}.mp4") for i in range(4)]
    with pytest.raises(KeyboardInterrupt):
        video.cut_segments(member, ts, requests, video.EncodeSettings(size=(128, 72)))
    assert list(tmp_path.iterdir()) == []
