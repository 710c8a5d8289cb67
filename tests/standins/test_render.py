"""The rendered road shows the ego's motion: frame-to-frame change grows with speed, the road bends the way the ego
turns, the distant skyline slides against the yaw, and the ego always sits on its lane."""

import logging
import time

import cv2
import numpy as np
import pytest

from pipeline.standins.frame_code import code_region
from pipeline.standins.render import CameraModel, RoadRenderer
from pipeline.standins.trajectory import SCENARIO_KINDS, Profile, Trajectory, scenario_for

W, H = 256, 144
CAM = CameraModel(W, H)
FRAME_US = 33_333


def _straight(speed_mps: float, curvature: float = 0.0) -> Trajectory:
    kind = "cruise" if curvature == 0 else ("left_turn" if curvature > 0 else "right_turn")
    return Trajectory(kind, Profile(speed_mps), Profile(curvature), t_min_us=-1_000_000, t_max_us=10_000_000)


def _frame_change(renderer: RoadRenderer, t_us: int) -> float:
    a = renderer.render(t_us).astype(np.float32)
    b = renderer.render(t_us + FRAME_US).astype(np.float32)
    return float(np.abs(a - b).mean())


def test_frame_change_grows_with_speed():
    changes = [_frame_change(RoadRenderer(_straight(v), CAM, seed=1), 2_000_000) for v in (0.0, 3.0, 10.0, 25.0)]
    assert changes[0] == 0.0
    assert changes[1] > 0.3
    assert changes[1] < changes[2] < changes[3]


def test_stopping_clip_freezes_and_moving_clip_flows():
    traj = scenario_for(SCENARIO_KINDS.index("standstill"), seed=0)
    renderer = RoadRenderer(traj, CAM, seed=0)
    assert traj.at(np.array([1_000_000])).speed[0] == 0.0
    assert _frame_change(renderer, 1_000_000) == 0.0
    assert traj.at(np.array([19_000_000])).speed[0] > 5.0
    assert _frame_change(renderer, 19_000_000) > 1.0


def _far_road_column(frame: np.ndarray) -> float:
    """Mean column of road (grey: asphalt or paint, not verge green) ~12-60 m ahead (rows just below the horizon)."""
    f = frame.astype(np.int32)
    rows = slice(int(0.47 * H), int(0.56 * H))
    r, g, b = f[rows, :, 0], f[rows, :, 1], f[rows, :, 2]
    road = (np.abs(r - g) < 12) & (np.abs(g - b) < 15)
    assert road.sum() > 20
    return float(np.nonzero(road)[1].mean())


def test_road_bends_the_way_the_ego_turns():
    t = 3_000_000
    straight = _far_road_column(RoadRenderer(_straight(10.0), CAM).render(t))
    left = _far_road_column(RoadRenderer(_straight(10.0, 0.04), CAM).render(t))
    right = _far_road_column(RoadRenderer(_straight(10.0, -0.04), CAM).render(t))
    assert left < straight - 15 and right > straight + 15


def test_skyline_slides_right_when_turning_left():
    renderer = RoadRenderer(_straight(10.0, 0.04), CAM)  # yaw rate 0.4 rad/s, left
    band = slice(int(0.2 * H), int(0.5 * H))
    a = cv2.cvtColor(renderer.render(1_000_000), cv2.COLOR_RGB2GRAY)[band].astype(np.float32)
    b = cv2.cvtColor(renderer.render(1_100_000), cv2.COLOR_RGB2GRAY)[band].astype(np.float32)
    (dx, _), _ = cv2.phaseCorrelate(a, b)
    # 0.04 rad of yaw in 0.1 s; the fisheye maps ~W / (120 deg) px per rad near the centre: ~4.9 px.
    assert dx == pytest.approx(0.04 * W / np.radians(120), rel=0.35)


@pytest.mark.parametrize("clip_number", range(6))
def test_ego_stays_on_its_lane(clip_number):
    traj = scenario_for(clip_number, seed=2)
    renderer = RoadRenderer(traj, CAM, seed=clip_number)
    for t in (0, 7_000_000, 13_000_000, 19_900_000):
        frame = renderer.render(t).astype(np.int32)
        patch = frame[-12:, W // 2 - 8 : W // 2 + 8].reshape(-1, 3).mean(axis=0)  # road just ahead of the hood
        assert abs(patch[0] - patch[1]) < 12 and abs(patch[1] - patch[2]) < 12, (traj.kind, t, patch)  # asphalt


def test_render_speed_and_determinism(caplog):
    renderer = RoadRenderer(scenario_for(1, seed=0), CAM, seed=0)
    renderer.render(0)
    start = time.perf_counter()
    frames = [renderer.render(k * FRAME_US) for k in range(60)]
    per_frame_ms = (time.perf_counter() - start) / 60 * 1e3
    logging.getLogger(__name__).info("render %dx%d: %.2f ms/frame", W, H, per_frame_ms)
    assert per_frame_ms < 25.0  # ~1-3 ms on an idle core; generous for shared CI
    again = RoadRenderer(scenario_for(1, seed=0), CAM, seed=0).render(59 * FRAME_US)
    np.testing.assert_array_equal(again, frames[59])
    x0, y0, x1, y1 = code_region(W, H)
    assert frames[0].shape == (H, W, 3) and frames[0].dtype == np.uint8 and x1 > x0 and y1 > y0
