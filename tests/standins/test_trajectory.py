"""Analytic trajectories: kinematic consistency (v, kappa ⇄ x, y, yaw), plausibility, scenario coverage."""

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.standins.trajectory import (
    SCENARIO_KINDS,
    Profile,
    Step,
    Trajectory,
    Wave,
    arc_pose,
    relative_arc_pose,
    scenario_for,
)

DT_US = 1_000  # 1 kHz for the independent numerical integration
T_US = np.arange(-1_000_000, 21_000_001, DT_US, dtype=np.int64)


def _cumtrapz(y: np.ndarray, dt: float) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * dt)])


@pytest.fixture(scope="module", params=range(12))
def clip(request):
    traj = scenario_for(request.param, seed=3)
    return traj, traj.at(T_US)


def test_integrating_velocity_and_curvature_reproduces_pose(clip):
    traj, st = clip
    dt = DT_US * 1e-6
    zero = int(np.flatnonzero(T_US == 0)[0])
    # Yaw from integrating speed * curvature; x, y from integrating the velocity vector.
    yaw = _cumtrapz(st.speed * st.curvature, dt)
    x, y = _cumtrapz(st.vx, dt), _cumtrapz(st.vy, dt)
    np.testing.assert_allclose(yaw - yaw[zero], st.yaw, atol=2e-5)
    np.testing.assert_allclose(x - x[zero], st.x, atol=2e-3)
    np.testing.assert_allclose(y - y[zero], st.y, atol=2e-3)
    # Anchor frame: pose at t = 0 is the origin, heading along +x.
    assert st.x[zero] == pytest.approx(0.0, abs=1e-9) and st.y[zero] == pytest.approx(0.0, abs=1e-9)
    assert st.yaw[zero] == pytest.approx(0.0, abs=1e-9)


def test_velocity_acceleration_and_quaternion_are_consistent(clip):
    traj, st = clip
    dt = DT_US * 1e-6
    np.testing.assert_allclose(np.sqrt(st.vx**2 + st.vy**2 + st.vz**2), st.speed, atol=1e-9)
    # Central differences of position and velocity give velocity and acceleration.
    np.testing.assert_allclose((st.x[2:] - st.x[:-2]) / (2 * dt), st.vx[1:-1], atol=1e-4)
    np.testing.assert_allclose((st.y[2:] - st.y[:-2]) / (2 * dt), st.vy[1:-1], atol=1e-4)
    np.testing.assert_allclose((st.vx[2:] - st.vx[:-2]) / (2 * dt), st.ax[1:-1], atol=1e-3)
    np.testing.assert_allclose((st.vy[2:] - st.vy[:-2]) / (2 * dt), st.ay[1:-1], atol=1e-3)
    # Unit quaternion, scalar last, rotation about z by yaw.
    q = np.stack([st.qx, st.qy, st.qz, st.qw], axis=1)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(2 * np.arctan2(st.qz, st.qw), st.yaw, atol=1e-9)
    moving = st.speed > 0.5
    # No side slip: velocity points along the heading; curvature = cross(v, a) / |v|^3.
    heading = np.arctan2(st.vy, st.vx)
    np.testing.assert_allclose(np.angle(np.exp(1j * (heading - st.yaw)))[moving], 0.0, atol=1e-9)
    kappa = (st.vx * st.ay - st.vy * st.ax) / np.maximum(st.speed, 1e-9) ** 3
    np.testing.assert_allclose(kappa[moving], st.curvature[moving], atol=1e-9)


def test_physically_plausible(clip):
    traj, st = clip
    assert st.speed.min() >= 0.0 and st.speed.max() <= 30.0
    assert np.abs(st.curvature).max() <= 0.1
    assert np.abs(st.longitudinal_accel).max() <= 3.6
    assert np.abs(st.speed**2 * st.curvature).max() <= 4.0  # lateral acceleration
    jerk = np.diff(st.longitudinal_accel) / (DT_US * 1e-6)
    assert np.abs(jerk).max() <= 4.5
    np.testing.assert_allclose(jerk, 0.5 * (st.jerk[1:] + st.jerk[:-1]), atol=1e-3)


def test_turn_signs_and_scenario_coverage():
    kinds = [scenario_for(n, seed=11).kind for n in range(6)]
    assert sorted(kinds) == sorted(SCENARIO_KINDS)
    left = scenario_for(SCENARIO_KINDS.index("left_turn"), seed=11).at(np.array([20_000_000]))
    right = scenario_for(SCENARIO_KINDS.index("right_turn"), seed=11).at(np.array([20_000_000]))
    assert left.yaw[0] > np.radians(45) and left.y[0] > 10.0
    assert right.yaw[0] < -np.radians(45) and right.y[0] < -10.0
    t = np.arange(0, 20_000_001, 10_000)
    assert scenario_for(SCENARIO_KINDS.index("left_turn"), seed=11).at(t).curvature.max() >= 0.05
    standstill = scenario_for(SCENARIO_KINDS.index("standstill"), seed=11).at(t)
    assert (standstill.speed[: len(t) // 4] == 0).all() and standstill.speed[-1] > 5.0
    brake = scenario_for(SCENARIO_KINDS.index("brake"), seed=11).at(t)
    assert brake.speed[-1] < brake.speed[0] - 5.0


def test_deterministic_and_seed_dependent():
    t = np.arange(0, 20_000_001, 100_000)
    a, b = scenario_for(4, seed=1).at(t), scenario_for(4, seed=1).at(t)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.allclose(a.speed, scenario_for(4, seed=2).at(t).speed)


def test_constant_turn_matches_circle():
    """Constant speed and curvature: a circle of radius 1/kappa, analytically."""
    v, k = 10.0, 0.05
    traj = Trajectory("left_turn", Profile(v), Profile(k), t_min_us=-1_000_000, t_max_us=10_000_000)
    t = np.array([-700_000, 1_234_567, 9_999_999])
    st = traj.at(t)
    ts = t * 1e-6
    np.testing.assert_allclose(st.yaw, v * k * ts, atol=1e-9)
    np.testing.assert_allclose(st.x, np.sin(v * k * ts) / k, atol=1e-7)
    np.testing.assert_allclose(st.y, (1 - np.cos(v * k * ts)) / k, atol=1e-7)


def test_profile_derivatives_and_validation():
    p = Profile(2.0, steps=(Step(1.0, 2.0, 3.0),), waves=(Wave(0.5, 4.0, 0.3),))
    t = np.linspace(-1, 5, 6001)
    v, dv, ddv = p.evaluate(t)
    np.testing.assert_allclose(np.gradient(v, t)[1:-1], dv[1:-1], atol=2e-3)
    np.testing.assert_allclose(np.gradient(dv, t)[1:-1], ddv[1:-1], atol=2e-2)
    assert p.evaluate(np.array([10.0]))[0][0] == pytest.approx(5.0 + 0.5 * np.sin(2 * np.pi * 10 / 4 + 0.3))
    with pytest.raises(PipelineError):
        Step(0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="outside"):
        scenario_for(0, seed=0, duration_s=2.0).at(np.array([5_000_000]))


@pytest.mark.parametrize(("speed", "curvature"), [(12.0, 0.0), (9.0, 0.06), (7.0, -0.1)])
def test_arc_pose_matches_the_integrated_trajectory(speed, curvature):
    kind = "cruise" if curvature == 0 else "left_turn"
    traj = Trajectory(kind, Profile(speed), Profile(curvature), t_min_us=-1_000_000, t_max_us=6_000_000)
    t_us = np.arange(0, 6_000_000, 250_000)
    state = traj.at(t_us)
    np.testing.assert_allclose(
        arc_pose(t_us / 1e6, speed, 0.0, curvature), np.stack([state.x, state.y, state.yaw], 1), atol=1e-6
    )


@pytest.mark.parametrize(("speed", "accel", "curvature"), [(4.0, 2.0, 0.0), (3.0, 1.5, 0.03), (10.0, -1.0, -0.05)])
def test_arc_pose_moves_along_its_heading_at_its_speed(speed, accel, curvature):
    t, dt = np.linspace(0.5, 4.0, 8), 1e-5
    xyh = arc_pose(t, speed, accel, curvature)
    rate = (arc_pose(t + dt, speed, accel, curvature) - arc_pose(t - dt, speed, accel, curvature)) / (2 * dt)
    v = speed + accel * t
    np.testing.assert_allclose(rate[:, 0], v * np.cos(xyh[:, 2]), atol=1e-6)
    np.testing.assert_allclose(rate[:, 1], v * np.sin(xyh[:, 2]), atol=1e-6)
    np.testing.assert_allclose(rate[:, 2], v * curvature, atol=1e-6)
    # The pose a further arc length along, seen from any pose, is the same closed form.
    ahead = arc_pose(t + 0.5, speed, accel, curvature)
    c, s = np.cos(xyh[:, 2]), np.sin(xyh[:, 2])
    dx, dy = ahead[:, 0] - xyh[:, 0], ahead[:, 1] - xyh[:, 1]
    local = np.stack([c * dx + s * dy, -s * dx + c * dy, ahead[:, 2] - xyh[:, 2]], 1)
    arc = (speed * (t + 0.5) + 0.5 * accel * (t + 0.5) ** 2) - (speed * t + 0.5 * accel * t**2)
    np.testing.assert_allclose(local, relative_arc_pose(arc, curvature), atol=1e-9)
