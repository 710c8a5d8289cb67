"""Metrics on hand-computed cases, the exact circle, and an independent fine-step integration."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.stages.evaluate.metrics import (
    HORIZON_POINTS_S,
    integrate_path,
    mae,
    mae_by_step,
    per_sample_errors,
    rmse,
    score,
)
from tests.reference import ade_fde


def test_mae_rmse_hand_computed():
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    true = np.zeros((2, 2))
    assert mae(pred, true) == pytest.approx(2.5)
    assert rmse(pred, true) == pytest.approx(math.sqrt((1 + 4 + 9 + 16) / 4))
    np.testing.assert_allclose(mae_by_step(pred, true), [2.0, 3.0])


def test_straight_line_is_speed_times_time():
    xy = integrate_path(np.full(30, 10.0), np.zeros(30), dt=1 / 30)
    np.testing.assert_allclose(xy[:, 0], 10.0 * (np.arange(30) + 1) / 30)
    np.testing.assert_allclose(xy[:, 1], 0.0, atol=1e-12)


@pytest.mark.parametrize("kappa", [0.05, -0.05, 0.5, 1e-9])
def test_constant_speed_and_curvature_is_the_exact_circle_arc(kappa):
    v, n = 10.0, 30
    xy = integrate_path(np.full(n, v), np.full(n, kappa), dt=1 / n)
    radius = 1 / kappa
    theta = v * kappa * (np.arange(n) + 1) / n  # heading after each step
    np.testing.assert_allclose(xy[:, 0], radius * np.sin(theta), rtol=1e-12, atol=1e-9)
    # R (1 - cos theta) written as 2 R sin^2(theta / 2), which does not cancel for tiny curvature
    np.testing.assert_allclose(xy[:, 1], 2 * radius * np.sin(theta / 2) ** 2, rtol=1e-9, atol=1e-12)
    # the endpoint for kappa = 0.05: 10 m along a 20 m circle, 0.5 rad of turn
    if kappa == 0.05:
        assert xy[-1, 0] == pytest.approx(20 * math.sin(0.5), abs=1e-12)
        assert xy[-1, 1] == pytest.approx(20 * (1 - math.cos(0.5)), abs=1e-12)


def test_two_steps_hand_computed():
    # 1 m straight, then 1 m of arc with curvature pi/2 (a quarter circle of radius 2/pi)
    xy = integrate_path(np.array([1.0, 1.0]), np.array([0.0, math.pi / 2]), dt=1.0)
    np.testing.assert_allclose(xy, [[1.0, 0.0], [1.0 + 2 / math.pi, 2 / math.pi]], atol=1e-12)


def test_batched_shape_and_rows_independent():
    v = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    k = np.array([[0.1, 0.0, -0.1], [0.2, 0.2, 0.2]])
    xy = integrate_path(v, k, dt=0.5)
    assert xy.shape == (2, 3, 2)
    np.testing.assert_allclose(xy[1], integrate_path(v[1], k[1], dt=0.5))


def fine_euler(v: np.ndarray, k: np.ndarray, dt: float, sub: int = 2000) -> np.ndarray:
    """Independent reference: the same piecewise-constant hold, integrated with tiny midpoint steps."""
    x = y = th = 0.0
    h = dt / sub
    out = []
    for vi, ki in zip(v, k, strict=True):
        for _ in range(sub):
            mid = th + 0.5 * vi * ki * h
            x += vi * h * math.cos(mid)
            y += vi * h * math.sin(mid)
            th += vi * ki * h
        out.append((x, y))
    return np.array(out)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.floats(0, 30), min_size=3, max_size=3),
    st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=3),
)
def test_matches_fine_integration(v, k):
    v, k = np.array(v), np.array(k)
    np.testing.assert_allclose(integrate_path(v, k, dt=1 / 3), fine_euler(v, k, 1 / 3, sub=600), rtol=1e-6, atol=2e-5)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.1, 30), min_size=5, max_size=5), st.floats(0.01, 0.3))
def test_any_speed_profile_with_constant_curvature_stays_on_the_circle(v, kappa):
    xy = integrate_path(np.array(v), np.full(5, kappa), dt=0.2)
    radius = 1 / kappa
    np.testing.assert_allclose(np.hypot(xy[:, 0], xy[:, 1] - radius), radius, rtol=1e-9)


def test_ade_fde_hand_computed():
    pred = integrate_path(np.array([[1.0, 1.0]]), np.zeros((1, 2)), dt=0.5)
    true = integrate_path(np.array([[2.0, 2.0]]), np.zeros((1, 2)), dt=0.5)
    ade, fde = ade_fde(pred, true)
    assert ade == pytest.approx(0.75)  # errors 0.5 and 1.0 m
    assert fde == pytest.approx(1.0)


def test_score_hand_computed_and_horizons():
    n = 30
    true_v = np.full((2, n), 10.0)
    true_k = np.zeros((2, n))
    pred_v = true_v + np.array([[1.0], [-3.0]])  # errors 1 and 3 m/s
    pred_k = np.zeros((2, n))
    s = score(pred_v, pred_k, true_v, true_k)
    assert s.n_samples == 2
    assert s.velocity_mae == pytest.approx(2.0)
    assert s.velocity_rmse == pytest.approx(math.sqrt(5.0))
    assert s.curvature_mae == 0.0
    t = (np.arange(n) + 1) / n
    np.testing.assert_allclose(s.displacement_by_step, 2.0 * t)  # mean of 1*t and 3*t
    assert s.ade == pytest.approx(np.mean(2.0 * t))
    assert s.fde == pytest.approx(2.0)
    half = s.at_horizon(0.5)
    assert half["time_s"] == pytest.approx(0.5)
    assert half["displacement"] == pytest.approx(1.0)
    d = s.to_dict()
    assert set(d["at_horizon"]) == {f"{h:g}s" for h in HORIZON_POINTS_S}
    assert d["at_horizon"]["1s"]["displacement"] == pytest.approx(2.0)
    per = per_sample_errors(pred_v, pred_k, true_v, true_k)
    np.testing.assert_allclose(per["velocity_mae"], [1.0, 3.0])
    np.testing.assert_allclose(per["fde"], [1.0, 3.0])


def test_score_of_no_samples_is_nan_not_a_crash():
    s = score(np.zeros((0, 30)), np.zeros((0, 30)), np.zeros((0, 30)), np.zeros((0, 30)))
    assert s.n_samples == 0 and math.isnan(s.ade)
    assert s.to_dict()["ade"] is None


def test_score_rejects_non_finite():
    bad = np.full((1, 3), np.nan)
    with pytest.raises(ValueError, match="non-finite"):
        score(bad, np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 3)))
