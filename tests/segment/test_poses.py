"""Trajectory targets against closed-form drives (straight, constant turn, accelerating) and the devkit's
interpolator."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from pipeline.av import egomotion as ego
from pipeline.av import poses
from pipeline.standins.trajectory import arc_pose, relative_arc_pose

# (speed m/s, acceleration m/s^2, curvature 1/m) of each drive.
DRIVES = {
    "straight": (15.0, 0.0, 0.0),
    "constant_turn": (10.0, 0.0, 0.05),
    "right_turn": (8.0, 0.0, -0.08),
    "accelerating": (4.0, 2.0, 0.0),
    "accelerating_turn": (3.0, 1.5, 0.03),
}
ENDS_US = np.array([2_000_000, 4_512_345, 7_000_000])


def irregular_times(start_s: float, stop_s: float, seed: int) -> np.ndarray:
    """Sample times with intervals of 10-15 ms (67-100 Hz), int64 µs, from start to past stop."""
    rng = np.random.default_rng(seed)
    dt = rng.uniform(10_000, 15_000, size=int((stop_s - start_s) * 100) + 10).round().astype(np.int64)
    return int(start_s * 1e6) + np.concatenate([[0], np.cumsum(dt)])


def drive_table(t_us: np.ndarray, speed: float, accel: float, curvature: float) -> pd.DataFrame:
    """An egomotion DataFrame of a closed-form drive (pose from `arc_pose`, velocity along the heading)."""
    xyh = arc_pose(t_us / 1e6, speed, accel, curvature)
    q = Rotation.from_euler("z", xyh[:, 2:]).as_quat()
    v = speed + accel * t_us / 1e6
    frame = {"timestamp": t_us, "x": xyh[:, 0], "y": xyh[:, 1], "z": np.zeros(len(t_us))}
    frame |= {"qx": q[:, 0], "qy": q[:, 1], "qz": q[:, 2], "qw": q[:, 3]}
    frame |= {"vx": v * np.cos(xyh[:, 2]), "vy": v * np.sin(xyh[:, 2]), "vz": np.zeros(len(t_us))}
    frame |= {"ax": np.zeros(len(t_us)), "ay": np.zeros(len(t_us)), "az": np.zeros(len(t_us))}
    return pd.DataFrame(frame | {"curvature": np.full(len(t_us), curvature)})


def expected_xyh(end_us: np.ndarray, offsets_us: np.ndarray, speed: float, accel: float, curvature: float):
    """(S, K, 3) closed-form ego-frame poses: the arc length travelled from each end, on the drive's circle."""
    t0 = end_us[:, None] / 1e6
    t = t0 + offsets_us[None, :] / 1e6
    arc = (speed * t + 0.5 * accel * t * t) - (speed * t0 + 0.5 * accel * t0 * t0)
    return relative_arc_pose(arc, curvature)


@pytest.mark.parametrize("name", sorted(DRIVES))
def test_targets_match_closed_form_drives(name):
    speed, accel, curvature = DRIVES[name]
    table = ego.clean_egomotion(drive_table(irregular_times(0.0, 10.0, seed=len(name)), speed, accel, curvature))
    tg = poses.trajectory_targets(table, ENDS_US, n_future=30, future_hz=10.0, n_history=16, history_hz=10.0)
    assert tg.valid.all(), tg.reasons
    future = expected_xyh(ENDS_US, np.arange(1, 31) * 100_000, speed, accel, curvature)
    history = expected_xyh(ENDS_US, np.arange(-15, 1) * 100_000, speed, accel, curvature)
    for got, want in ((tg.future_xyh, future), (tg.history_xyh, history)):
        np.testing.assert_allclose(got[..., :2], want[..., :2], atol=1e-3, rtol=0)
        np.testing.assert_allclose(got[..., 2], want[..., 2], atol=1e-4, rtol=0)
    # Alpamayo's grid: the last history row is the window's end itself.
    np.testing.assert_allclose(tg.history_xyh[:, -1], 0.0, atol=1e-9)


def test_time_grids_follow_alpamayo():
    np.testing.assert_array_equal(poses.step_offsets_us(3, 10.0, future=True), [100_000, 200_000, 300_000])
    np.testing.assert_array_equal(poses.step_offsets_us(3, 10.0, future=False), [-200_000, -100_000, 0])
    np.testing.assert_array_equal(poses.step_offsets_us(2, 30.0, future=True), [33_333, 66_667])


def test_windows_outside_the_egomotion_are_invalid():
    table = ego.clean_egomotion(drive_table(irregular_times(0.0, 5.0, seed=1), *DRIVES["straight"]))
    last = int(table.timestamp_us[-1])
    ends = np.array([1_000_000, 1_500_000, last - 500_000, 2_500_000])
    tg = poses.trajectory_targets(table, ends, n_future=10, future_hz=10.0, n_history=16, history_hz=10.0)
    assert tg.valid.tolist() == [False, True, False, True]
    assert "no extrapolation" in tg.reasons[0] and "no extrapolation" in tg.reasons[2]
    assert np.isnan(tg.future_xyh[0]).all() and np.isfinite(tg.future_xyh[1]).all()


def test_a_nan_pose_in_the_span_invalidates_the_window():
    df = drive_table(irregular_times(0.0, 6.0, seed=2), *DRIVES["constant_turn"])
    df.loc[(df["timestamp"] > 3_500_000).idxmax(), "qz"] = np.nan
    ends = np.array([2_000_000, 3_000_000, 4_800_000])
    tg = poses.trajectory_targets(ego.clean_egomotion(df), ends, 10, 10.0, 0, 10.0)
    assert tg.valid.tolist() == [True, False, True]
    assert "NaN" in tg.reasons[1]


def test_a_table_without_poses_has_no_trajectory():
    df = drive_table(irregular_times(0.0, 4.0, seed=3), *DRIVES["straight"]).drop(columns=["x"])
    tg = poses.trajectory_targets(ego.clean_egomotion(df), np.array([2_000_000]), 10, 10.0, 4, 10.0)
    assert not tg.valid[0] and "no pose columns" in tg.reasons[0]


def test_interpolation_matches_devkit():
    from physical_ai_av.egomotion import EgomotionState

    rng = np.random.default_rng(7)
    df = drive_table(irregular_times(0.0, 12.0, seed=9), *DRIVES["accelerating_turn"])
    df[["x", "y", "z"]] += rng.normal(scale=0.05, size=(len(df), 3))  # not a smooth path: splines must agree
    wobble = Rotation.from_rotvec(rng.normal(scale=0.02, size=(len(df), 3)))
    q = Rotation.from_quat(df[["qx", "qy", "qz", "qw"]]) * wobble
    df[["qx", "qy", "qz", "qw"]] = q.as_quat()
    t = np.sort(rng.integers(int(df["timestamp"].iloc[0]), int(df["timestamp"].iloc[-1]), size=500))
    state = EgomotionState.from_egomotion_df(df).create_interpolator(df["timestamp"].to_numpy())(t)
    position, rotation = poses.interpolate_poses(ego.clean_egomotion(df), t)
    np.testing.assert_allclose(position, state.pose.translation, rtol=0, atol=1e-9)
    assert np.allclose((rotation.inv() * state.pose.rotation).magnitude(), 0.0, atol=1e-9)
