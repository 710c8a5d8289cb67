"""Trajectory baselines on analytic motions: CV exact on a straight constant-speed path, CTRV on a constant turn,
the ridge recovering a linear law from train samples."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.stages.evaluate.trajectory_baselines import (
    all_trajectory_baselines,
    constant_velocity,
    ctrv,
    fit_trajectory_ridge,
)

H, HISTORY_HZ, N, TARGET_HZ = 16, 10.0, 30, 30.0


def _times(last_time_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    history = last_time_s - (H - 1 - np.arange(H)) / HISTORY_HZ
    return history, (np.arange(N) + 1) / TARGET_HZ


def _straight(t: np.ndarray, speed: float, heading: float) -> np.ndarray:
    """[x, y, heading] at times t along a straight line through the origin at t = 0."""
    return np.stack([speed * t * np.cos(heading), speed * t * np.sin(heading), np.full_like(t, heading)], axis=-1)


def _turn(t: np.ndarray, speed: float, yaw_rate: float) -> np.ndarray:
    """[x, y, heading] at times t on a circle through the origin, heading 0 at t = 0."""
    radius = speed / yaw_rate
    return np.stack([radius * np.sin(yaw_rate * t), radius * (1 - np.cos(yaw_rate * t)), yaw_rate * t], axis=-1)


@pytest.mark.parametrize("last_time_s", [0.0, -0.1])
def test_constant_velocity_continues_a_straight_path_exactly(last_time_s: float) -> None:
    past, future = _times(last_time_s)
    pred = constant_velocity(_straight(past, 12.0, 0.3), N, TARGET_HZ, HISTORY_HZ, last_time_s)
    np.testing.assert_allclose(pred[0], _straight(future, 12.0, 0.3)[:, :2], atol=1e-9)


@pytest.mark.parametrize(("speed", "yaw_rate"), [(10.0, 0.2), (5.0, -0.5), (-3.0, 0.3)])
def test_ctrv_continues_a_constant_turn_exactly(speed: float, yaw_rate: float) -> None:
    past, future = _times(-0.05)
    pred = ctrv(_turn(past, speed, yaw_rate), N, TARGET_HZ, HISTORY_HZ, -0.05)
    np.testing.assert_allclose(pred[0], _turn(future, speed, yaw_rate)[:, :2], atol=1e-9)
    # Constant velocity cuts the corner: its error grows with the horizon.
    cv = constant_velocity(_turn(past, speed, yaw_rate), N, TARGET_HZ, HISTORY_HZ, -0.05)
    assert np.hypot(*(cv[0, -1] - _turn(future, speed, yaw_rate)[-1, :2])) > 0.05


def test_ctrv_without_turn_is_the_straight_line() -> None:
    past, future = _times()
    pred = ctrv(_straight(past, 8.0, -0.4), N, TARGET_HZ, HISTORY_HZ)
    np.testing.assert_allclose(pred[0], _straight(future, 8.0, -0.4)[:, :2], atol=1e-9)


def test_ridge_learns_a_linear_law_from_the_train_samples() -> None:
    rng = np.random.default_rng(0)
    past, future = _times()
    speeds, headings = rng.uniform(0.0, 30.0, 200), rng.uniform(-0.5, 0.5, 200)
    history = np.stack([_straight(past, v, h) for v, h in zip(speeds, headings, strict=True)])
    truth = np.stack([_straight(future, v, h)[:, :2] for v, h in zip(speeds, headings, strict=True)])
    ridge = fit_trajectory_ridge([(history[:150], truth[:150])], alpha=1e-6)
    np.testing.assert_allclose(ridge.predict(history[150:]), truth[150:], atol=1e-3)
    out = all_trajectory_baselines(history[150:], N, TARGET_HZ, HISTORY_HZ, ridge=ridge)
    assert list(out) == ["constant_velocity", "ctrv", "history_ridge"]
    with pytest.raises(ValueError, match="fit on 16"):
        ridge.predict(history[:, 1:])


def test_ridge_fed_in_uneven_batches_matches_the_in_memory_closed_form() -> None:
    """Streamed moments give the ridge of the textbook formula on all samples at once (noisy turns, so every column
    varies). Tolerance: 1e-9 of the largest weight; rounding (~1e-16) times the standardised Gram matrix's condition
    number (~2e4 here) gives ~1e-12 (single small weights differ more relative to themselves)."""
    rng = np.random.default_rng(3)
    m = 700
    past, future = _times()
    motions = list(zip(rng.uniform(2.0, 30.0, m), rng.uniform(-0.4, 0.4, m), strict=True))
    history = np.stack([_turn(past, v, w) for v, w in motions]) + rng.normal(0.0, 0.05, (m, H, 3))
    truth = np.stack([_turn(future, v, w)[:, :2] for v, w in motions]) + rng.normal(0.0, 0.05, (m, N, 2))
    cuts = [0, 1, 2, 130, 130, 500, m]
    ridge = fit_trajectory_ridge((history[a:b], truth[a:b]) for a, b in zip(cuts, cuts[1:], strict=False))
    x, y = history.reshape(m, -1), truth.reshape(m, -1)
    xs, ys = (x - x.mean(axis=0)) / x.std(axis=0), (y - y.mean(axis=0)) / y.std(axis=0)
    weights = np.linalg.solve(xs.T @ xs + np.eye(3 * H), xs.T @ ys)
    assert np.abs(ridge.weights - weights).max() <= 1e-9 * np.abs(weights).max()
    np.testing.assert_allclose(ridge.x_std, x.std(axis=0), rtol=1e-12)
    expected = (xs[:5] @ weights) * y.std(axis=0) + y.mean(axis=0)
    np.testing.assert_allclose(ridge.predict(history[:5]), expected.reshape(5, N, 2), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="earlier ones"):
        fit_trajectory_ridge([(history[:5], truth[:5]), (history[5:, 1:], truth[5:])])
    with pytest.raises(ValueError, match="no training samples"):
        fit_trajectory_ridge([(history[:0], truth[:0])])


def test_short_history_is_refused() -> None:
    with pytest.raises(ValueError, match="H >= 2"):
        constant_velocity(np.zeros((1, 1, 3)), N, TARGET_HZ, HISTORY_HZ)
