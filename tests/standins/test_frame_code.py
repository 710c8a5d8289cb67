"""Frame-index codes survive H.264 (yuv420p) and downscaling to the sizes the pipeline uses."""

import av
import cv2
import numpy as np
import pytest

from pipeline.standins.frame_code import MAX_FRAME_INDEX, code_region, decode_frame_index, stamp_frame_index
from pipeline.standins.render import CameraModel, RoadRenderer
from pipeline.standins.repo import encode_mp4
from pipeline.standins.trajectory import scenario_for

INDICES = [0, 1, 2, 3, 299, 599, 1234, 4095, 5461, MAX_FRAME_INDEX]


def _encoded_frames(tmp_path, width: int, height: int) -> list[np.ndarray]:
    """Rendered road frames stamped with INDICES, H.264-encoded and decoded back with PyAV."""
    renderer = RoadRenderer(scenario_for(0, seed=0), CameraModel(width, height))
    backgrounds = [renderer.render(t) for t in (0, 1_000_000, 2_000_000)]  # the codes change over moving content
    frames = [stamp_frame_index(backgrounds[k % 3].copy(), i) for k, i in enumerate(INDICES)]
    path = tmp_path / f"codes_{width}x{height}.mp4"
    encode_mp4(frames, path, width, height, fps=30.0, crf=28)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == len(INDICES)
    return decoded


@pytest.fixture(scope="module")
def hd_frames(tmp_path_factory):
    return _encoded_frames(tmp_path_factory.mktemp("codes"), 1920, 1080)


def test_stamp_then_read_raw():
    frame = np.full((144, 256, 3), 127, dtype=np.uint8)
    for index in INDICES:
        assert decode_frame_index(stamp_frame_index(frame, index)) == index
    x0, y0, x1, y1 = code_region(256, 144)
    assert (x0, y0) == (0, 0) and 100 <= x1 <= 110 and 6 <= y1 <= 8
    with pytest.raises(ValueError):
        stamp_frame_index(frame, MAX_FRAME_INDEX + 1)


def test_read_after_h264_at_1080p(hd_frames):
    assert [decode_frame_index(f) for f in hd_frames] == INDICES


@pytest.mark.parametrize(
    "size,interpolation",
    [
        ((448, 252), cv2.INTER_AREA),
        ((256, 144), cv2.INTER_AREA),
        ((128, 72), cv2.INTER_AREA),
        ((448, 256), cv2.INTER_LINEAR),  # non-uniform, as Qwen's processor rounds to multiples of 32
        ((256, 144), cv2.INTER_CUBIC),
    ],
)
def test_read_after_h264_and_downscale(hd_frames, size, interpolation):
    small = [cv2.resize(f, size, interpolation=interpolation) for f in hd_frames]
    assert [decode_frame_index(f) for f in small] == INDICES


@pytest.mark.parametrize("width,height", [(256, 144), (128, 72)])
def test_read_after_h264_at_small_sizes(tmp_path, width, height):
    assert [decode_frame_index(f) for f in _encoded_frames(tmp_path, width, height)] == INDICES


def test_uncoded_frame_is_rejected():
    renderer = RoadRenderer(scenario_for(2, seed=0), CameraModel(256, 144))
    with pytest.raises(ValueError, match="no frame code"):
        decode_frame_index(renderer.render(0))
