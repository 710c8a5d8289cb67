"""PyAV loader: frame sampling against analytic indices, pixels against OpenCV (an independent decoder)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import PipelineError, VideoError
from pipeline.model.video_input import load_video, probe_video, sample_indices
from tests.fixtures.model_fixtures import CLIP_FPS, CLIP_FRAMES, CLIP_HEIGHT, CLIP_WIDTH, write_test_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_test_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seed=3)


def test_one_second_at_default_fps_gives_four_frames_like_qwen():
    # Qwen's own sampler: linspace(0, 29, 4).round() = 0, 10, 19, 29.
    assert sample_indices(30, 30.0, VideoSettings()).tolist() == [0, 10, 19, 29]


@pytest.mark.parametrize(
    ("total", "fps", "settings", "expected"),
    [
        (30, 30.0, VideoSettings(fps=8.0), np.linspace(0, 29, 8).round()),
        (30, 30.0, VideoSettings(fps=1.0), np.linspace(0, 29, 4).round()),  # min_frames wins
        (300, 30.0, VideoSettings(fps=30.0, max_frames=16), np.linspace(0, 299, 16).round()),  # max_frames wins
        (30, 30.0, VideoSettings(fps=5.0), np.linspace(0, 29, 6).round()),  # 5 frames rounded up to even
        (3, 30.0, VideoSettings(), np.arange(3)),  # never more frames than the clip has
    ],
)
def test_sample_indices(total, fps, settings, expected):
    indices = sample_indices(total, fps, settings)
    assert indices.tolist() == expected.astype(int).tolist()
    assert len(set(indices.tolist())) == len(indices)


def test_load_video_matches_opencv_and_measures_fps(clip):
    frames, meta = load_video(clip, VideoSettings())
    assert frames.dtype == np.uint8 and frames.shape == (4, CLIP_HEIGHT, CLIP_WIDTH, 3)
    assert meta["total_num_frames"] == CLIP_FRAMES
    assert meta["fps"] == pytest.approx(CLIP_FPS, rel=1e-6)
    assert meta["duration"] == pytest.approx(CLIP_FRAMES / CLIP_FPS, rel=1e-6)
    assert meta["frames_indices"] == [0, 10, 19, 29]
    cap = cv2.VideoCapture(str(clip))
    reference = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        reference.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert len(reference) == CLIP_FRAMES
    for frame, index in zip(frames, meta["frames_indices"], strict=True):
        # Same H.264 stream; only the YUV->RGB conversion may differ by a few levels.
        assert np.abs(frame.astype(int) - reference[index].astype(int)).mean() < 3.0
    # The bar moves 4 px per frame: frame 29 is not frame 0.
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 5.0


def test_missing_and_corrupt_videos_raise_video_read_error(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        load_video(tmp_path / "nope.mp4", VideoSettings())
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 2048)
    with pytest.raises(VideoError, match="bad.mp4"):
        load_video(bad, VideoSettings())
    assert probe_video(bad) is not None and probe_video(tmp_path / "nope.mp4") is not None
    assert issubclass(VideoError, PipelineError)


def test_probe_accepts_a_good_clip(clip):
    assert probe_video(clip) is None


@pytest.mark.parametrize(
    "kwargs", [{"fps": 0}, {"min_frames": 0}, {"max_frames": 2}, {"max_pixels": 10, "min_pixels": 100}]
)
def test_bad_settings_are_one_line_errors(kwargs):
    with pytest.raises(PipelineError):
        VideoSettings(**kwargs)


def test_frame_count_follows_the_familys_frames_per_temporal_patch():
    settings = VideoSettings(fps=3.0, min_frames=1)
    # Qwen merges frame pairs: 3 frames become 4; InternVL takes frames one by one: 3 stay 3.
    assert sample_indices(30, 30.0, settings, frame_multiple=2).tolist() == [0, 10, 19, 29]
    assert sample_indices(30, 30.0, settings, frame_multiple=1).tolist() == [0, 14, 29]
