"""Baselines exact on small synthetic histories."""

import numpy as np
import pytest

from pipeline.baselines import (
    BASELINE_NAMES,
    all_baselines,
    constant,
    linear_extrapolation,
    train_mean,
    train_mean_profile,
    zero_motion,
)

N_H = 30
N = 30
T_HIST = -1 + (np.arange(N_H) + 1) / N_H  # last sample is "now", t = 0
T_FUT = (np.arange(N) + 1) / N


def test_zero_motion():
    v, k = zero_motion(3, N)
    assert v.shape == k.shape == (3, N)
    assert not v.any() and not k.any()


def test_train_mean_is_the_per_step_mean():
    tv = np.array([[1.0, 2.0], [3.0, 6.0]])
    tk = np.array([[0.01, 0.0], [0.03, -0.02]])
    mv, mk = train_mean_profile(tv, tk)
    np.testing.assert_allclose(mv, [2.0, 4.0])
    np.testing.assert_allclose(mk, [0.02, -0.01])
    v, k = train_mean(3, mv, mk)
    np.testing.assert_allclose(v, [[2.0, 4.0]] * 3)
    np.testing.assert_allclose(k, [[0.02, -0.01]] * 3)
    with pytest.raises(ValueError):
        train_mean_profile(np.zeros((0, 2)), np.zeros((0, 2)))


def test_constant_holds_the_last_history_value():
    hv = np.stack([np.linspace(1, 5, N_H), np.linspace(9, 7, N_H)])
    hk = np.stack([np.linspace(0, 0.01, N_H), np.full(N_H, -0.02)])
    v, k = constant(hv, hk, N)
    np.testing.assert_allclose(v, [[5.0] * N, [7.0] * N])
    np.testing.assert_allclose(k, [[0.01] * N, [-0.02] * N])


def test_linear_extrapolation_continues_an_exact_line():
    hv = (5 + 2 * T_HIST)[None, :]
    hk = (0.01 - 0.005 * T_HIST)[None, :]
    v, k = linear_extrapolation(hv, hk, N)
    np.testing.assert_allclose(v[0], 5 + 2 * T_FUT, atol=1e-12)
    np.testing.assert_allclose(k[0], 0.01 - 0.005 * T_FUT, atol=1e-12)


def test_linear_extrapolation_clamps_speed_at_zero_not_curvature():
    hv = (1 - 3 * T_HIST)[None, :]  # decelerating: crosses zero at t = 1/3 s
    hk = (-0.1 * T_HIST)[None, :] - 0.05
    v, k = linear_extrapolation(hv, hk, N)
    np.testing.assert_allclose(v[0], np.maximum(1 - 3 * T_FUT, 0.0), atol=1e-12)
    assert v[0, -1] == 0.0
    np.testing.assert_allclose(k[0], -0.05 - 0.1 * T_FUT, atol=1e-12)
    assert k[0, -1] < -0.1


def test_linear_extrapolation_of_a_noisy_history_is_the_least_squares_line():
    rng = np.random.default_rng(0)
    hv = 8 + 1.5 * T_HIST + rng.normal(0, 0.1, N_H)
    slope, intercept = np.polyfit(T_HIST, hv, 1)
    v, _ = linear_extrapolation(hv[None, :], np.zeros((1, N_H)), N)
    np.testing.assert_allclose(v[0], intercept + slope * T_FUT, atol=1e-10)


def test_all_baselines_names_and_shapes():
    hv = np.full((4, N_H), 3.0)
    hk = np.zeros((4, N_H))
    out = all_baselines(hv, hk, N, np.full(N, 2.0), np.zeros(N))
    assert tuple(out) == BASELINE_NAMES
    for v, k in out.values():
        assert v.shape == k.shape == (4, N)
    np.testing.assert_allclose(out["constant"][0], 3.0)
    np.testing.assert_allclose(out["linear_extrapolation"][0], 3.0)
    np.testing.assert_allclose(out["train_mean"][0], 2.0)
