"""Motion targets against analytic motion, the devkit's interpolator, and the timing conventions."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from pipeline.av import egomotion as ego
from tests.reference import body_frame_velocity, planar_curvature

WINDOW_US = 1_000_000
HORIZON_US = 1_000_000
N = 30


def irregular_times(duration_s: float, seed: int, start_s: float = -0.5) -> np.ndarray:
    """Sample times with intervals drawn from 10-15 ms (67-100 Hz), int64 µs, covering [start, start + duration]."""
    rng = np.random.default_rng(seed)
    dt = rng.uniform(10_000, 15_000, size=int(duration_s * 100) + 10).round().astype(np.int64)
    t = int(start_s * 1e6) + np.concatenate([[0], np.cumsum(dt)])
    return t[t <= int((start_s + duration_s) * 1e6)]


def table_from_motion(t_us: np.ndarray, heading, speed, curvature, accel=None) -> pd.DataFrame:
    """An egomotion DataFrame for planar motion given heading(t) rad, speed(t) m/s and curvature(t) 1/m."""
    t = t_us / 1e6
    th, v, k = heading(t), speed(t), curvature(t)
    a_t = accel(t) if accel is not None else np.zeros_like(t)
    rot = Rotation.from_euler("z", th[:, None])
    q = rot.as_quat()
    vel = np.stack([v * np.cos(th), v * np.sin(th), np.zeros_like(t)], axis=1)
    # Acceleration: tangential a_t plus centripetal v^2 k, pointing left of the heading.
    acc = np.stack(
        [a_t * np.cos(th) - v**2 * k * np.sin(th), a_t * np.sin(th) + v**2 * k * np.cos(th), np.zeros_like(t)], axis=1
    )
    return pd.DataFrame(
        {
            "timestamp": t_us.astype(np.int64),
            "qx": q[:, 0],
            "qy": q[:, 1],
            "qz": q[:, 2],
            "qw": q[:, 3],
            "x": np.zeros_like(t),
            "y": np.zeros_like(t),
            "z": np.zeros_like(t),
            "vx": vel[:, 0],
            "vy": vel[:, 1],
            "vz": vel[:, 2],
            "ax": acc[:, 0],
            "ay": acc[:, 1],
            "az": acc[:, 2],
            "curvature": k,
        }
    )


V0, R, A, K0, T_S = 12.0, 25.0, 1.5, 0.02, 6.0
MOTIONS = {
    "straight": dict(
        heading=lambda t: np.full_like(t, 0.3), speed=lambda t: np.full_like(t, V0), curvature=np.zeros_like
    ),
    "circle": dict(
        heading=lambda t: V0 * t / R, speed=lambda t: np.full_like(t, V0), curvature=lambda t: np.full_like(t, 1 / R)
    ),
    "accelerating": dict(
        heading=np.zeros_like, speed=lambda t: 2.0 + A * t, curvature=np.zeros_like, accel=lambda t: np.full_like(t, A)
    ),
    # S-curve: curvature k0 sin(2 pi t / T) at constant speed; heading is its integral times v.
    "s_curve": dict(
        heading=lambda t: V0 * K0 * T_S / (2 * np.pi) * (1 - np.cos(2 * np.pi * t / T_S)),
        speed=lambda t: np.full_like(t, V0),
        curvature=lambda t: K0 * np.sin(2 * np.pi * t / T_S),
    ),
}


@pytest.mark.parametrize("name", sorted(MOTIONS))
def test_targets_match_analytic_motion(name):
    motion = MOTIONS[name]
    t_us = irregular_times(21.0, seed=sorted(MOTIONS).index(name))
    table = ego.clean_egomotion(table_from_motion(t_us, **motion))
    start, end = ego.segment_windows(0, 20_000_000, 1.0, 1.0, 1.0)
    assert len(end) == 19
    tg = ego.segment_targets(table, end, WINDOW_US, HORIZON_US, N)
    assert tg.valid.all(), tg.reasons
    fut_s = ego.future_sample_times(end, HORIZON_US, N) / 1e6
    hist_s = ego.history_sample_times(end, WINDOW_US, N) / 1e6
    for got, truth in [
        (tg.velocity, motion["speed"](fut_s)),
        (tg.history_velocity, motion["speed"](hist_s)),
        (tg.curvature, motion["curvature"](fut_s)),
        (tg.history_curvature, motion["curvature"](hist_s)),
    ]:
        scale = max(np.abs(truth).max(), 1e-12)
        # Relative 1e-3; near zero crossings of the S-curve relative to the signal's amplitude.
        np.testing.assert_allclose(got, truth, rtol=1e-3, atol=1e-3 * scale)
    np.testing.assert_allclose(tg.speed_last, motion["speed"](end / 1e6), rtol=1e-3)
    np.testing.assert_allclose(tg.speed_mean, motion["speed"](hist_s).mean(axis=1), rtol=1e-3)
    np.testing.assert_allclose(tg.curvature_last, motion["curvature"](end / 1e6), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(tg.curvature_mean, motion["curvature"](hist_s).mean(axis=1), rtol=1e-3, atol=1e-6)


def test_sample_times_follow_the_contract():
    end = np.array([1_000_000, 5_500_000])
    fut = ego.future_sample_times(end, HORIZON_US, N)
    hist = ego.history_sample_times(end, WINDOW_US, N)
    assert fut.shape == hist.shape == (2, N)
    assert fut[0, 0] == 1_033_333 and fut[0, -1] == 2_000_000
    assert hist[0, 0] == 33_333 and hist[0, -1] == 1_000_000
    assert hist[1, -1] == 5_500_000 and fut[1, -1] == 6_500_000


def test_left_turn_has_positive_curvature():
    # A counter-clockwise circle (heading increasing: turning left with z up).
    motion = MOTIONS["circle"]
    df = table_from_motion(irregular_times(5.0, seed=3), **motion)
    k = planar_curvature(df[["vx", "vy"]].to_numpy(), df[["ax", "ay"]].to_numpy())
    np.testing.assert_allclose(k, 1 / R, rtol=1e-9)
    # The same path driven clockwise is a right turn.
    k_right = planar_curvature(df[["vx", "vy"]].to_numpy() * [1, -1], df[["ax", "ay"]].to_numpy() * [1, -1])
    np.testing.assert_allclose(k_right, -1 / R, rtol=1e-9)


def test_body_frame_velocity_is_forward_on_a_circle():
    df = table_from_motion(irregular_times(5.0, seed=4), **MOTIONS["circle"])
    quat, velocity = np.array(df[["qx", "qy", "qz", "qw"]]), np.array(df[["vx", "vy", "vz"]])
    body = body_frame_velocity(quat, velocity)
    np.testing.assert_allclose(body[:, 0], V0, rtol=1e-9)
    np.testing.assert_allclose(body[:, 1:], 0.0, atol=1e-9)


def test_matches_devkit_interpolator():
    from physical_ai_av.egomotion import EgomotionState

    df = table_from_motion(irregular_times(21.0, seed=5), **MOTIONS["s_curve"])
    df["vz"] = 0.3 * np.sin(df["timestamp"] / 1e6)
    interp = EgomotionState.from_egomotion_df(df).create_interpolator(df["timestamp"].to_numpy())
    table = ego.clean_egomotion(df)
    _, end = ego.segment_windows(0, 20_000_000, 1.0, 0.5, 1.0)
    tg = ego.segment_targets(table, end, WINDOW_US, HORIZON_US, N)
    t = np.concatenate([ego.history_sample_times(end, WINDOW_US, N), ego.future_sample_times(end, HORIZON_US, N)], 1)
    state = interp(t.ravel())
    devkit_speed = np.linalg.norm(state.velocity, axis=-1).reshape(t.shape)
    devkit_curv = state.curvature.reshape(t.shape)
    ours_speed = np.concatenate([tg.history_velocity, tg.velocity], axis=1)
    ours_curv = np.concatenate([tg.history_curvature, tg.curvature], axis=1)
    np.testing.assert_allclose(ours_speed, devkit_speed, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours_curv, devkit_curv, rtol=1e-6, atol=1e-12)


def test_clean_sorts_and_drops_duplicates():
    df = table_from_motion(irregular_times(3.0, seed=6), **MOTIONS["accelerating"])
    shuffled = pd.concat([df, df.iloc[[5, 9, 9]]]).sample(frac=1.0, random_state=0)
    table = ego.clean_egomotion(shuffled)
    assert table.n_duplicates == 3
    np.testing.assert_array_equal(table.timestamp_us, df["timestamp"].to_numpy())
    np.testing.assert_allclose(table.velocity, df[["vx", "vy", "vz"]].to_numpy())


def test_clean_counts_duplicates_whose_values_conflict():
    df = table_from_motion(irregular_times(3.0, seed=6), **MOTIONS["accelerating"])
    same = df.iloc[[5]]
    changed = df.iloc[[9, 12]].assign(vx=lambda d: d.vx + 1.0)
    table = ego.clean_egomotion(pd.concat([df, same, changed]))
    assert (table.n_duplicates, table.n_conflicting) == (3, 2)
    assert table.first_conflict_us == int(df["timestamp"].iloc[9])
    np.testing.assert_allclose(table.velocity, df[["vx", "vy", "vz"]].to_numpy())  # the first row of each is kept
    assert ego.clean_egomotion(pd.concat([df, same])).n_conflicting == 0


@pytest.mark.parametrize(("value", "word"), [(np.inf, "infinite"), (-np.inf, "infinite"), (np.nan, "NaN")])
def test_non_finite_egomotion_is_named_for_what_it_is(value, word):
    t_us = irregular_times(21.0, seed=7)
    df = table_from_motion(t_us, **MOTIONS["circle"])
    df.loc[np.argmin(np.abs(t_us - 5_500_000)), "curvature"] = value
    _, end = ego.segment_windows(0, 20_000_000, 1.0, 1.0, 1.0)
    tg = ego.segment_targets(ego.clean_egomotion(df), end, WINDOW_US, HORIZON_US, N)
    bad = [r for r in tg.reasons if r is not None]
    assert len(bad) == 2 and all(f"egomotion has {word} values within" in r for r in bad), bad


def test_clean_rejects_missing_column():
    df = table_from_motion(irregular_times(3.0, seed=6), **MOTIONS["straight"]).drop(columns=["curvature"])
    with pytest.raises(ego.EgomotionError, match="curvature"):
        ego.clean_egomotion(df)


def test_faults_invalidate_only_the_touched_segments():
    t_us = irregular_times(21.0, seed=7)
    df = table_from_motion(t_us, **MOTIONS["circle"])
    # NaN at 5.5 s: history of the segment ending at 6 s (span [5.03, 7.0]) and the futures of those ending at 5 s.
    df.loc[np.argmin(np.abs(t_us - 5_500_000)), "vx"] = np.nan
    # A 0.3 s gap around 12.5 s.
    df = df[(df.timestamp < 12_350_000) | (df.timestamp > 12_650_000)]
    table = ego.clean_egomotion(df)
    _, end = ego.segment_windows(0, 20_000_000, 1.0, 1.0, 1.0)
    tg = ego.segment_targets(table, end, WINDOW_US, HORIZON_US, N)
    bad = {int(e // 1_000_000): r for e, r in zip(end, tg.reasons, strict=True) if r is not None}
    assert set(bad) == {5, 6, 12, 13}, bad
    assert "NaN" in bad[5] and "NaN" in bad[6]
    assert "gap of 0.3" in bad[12] and "> 0.2 s" in bad[12]
    assert np.isnan(tg.velocity[~tg.valid]).all() and np.isfinite(tg.velocity[tg.valid]).all()


def test_no_extrapolation_beyond_the_table():
    df = table_from_motion(irregular_times(10.0, seed=8, start_s=0.0), **MOTIONS["straight"])
    table = ego.clean_egomotion(df)
    _, end = ego.segment_windows(0, 20_000_000, 1.0, 1.0, 1.0)
    tg = ego.segment_targets(table, end, WINDOW_US, HORIZON_US, N)
    last_ts = table.timestamp_us[-1]
    expected_valid = end + HORIZON_US <= last_ts
    np.testing.assert_array_equal(tg.valid, expected_valid)
    assert "no extrapolation" in tg.reasons[-1]


@pytest.mark.parametrize(
    ("start", "end_us", "stride", "count"),
    [(0, 20_000_000, 1.0, 19), (0, 20_000_000, 0.5, 37), (0, 1_999_999, 1.0, 0), (100, 2_000_100, 1.0, 1)],
)
def test_segment_windows(start, end_us, stride, count):
    s, e = ego.segment_windows(start, end_us, 1.0, stride, 1.0)
    assert len(s) == count
    if count:
        assert s[0] == start and (e - s == 1_000_000).all()
        assert e[-1] + 1_000_000 <= end_us


def test_clip_timing_and_frame_ranges():
    ts = np.round(np.arange(600) * 1e6 / 30).astype(np.int64)
    start, dt, end = ego.clip_timing(ts)
    assert (start, dt, end) == (0, 33_333, 20_000_000)
    s, e = ego.segment_windows(start, end, 1.0, 1.0, 1.0)
    ranges = ego.frames_in_windows(ts, s, e)
    assert (ranges[:, 1] - ranges[:, 0] == 30).all()
    assert ranges[3].tolist() == [90, 120]
