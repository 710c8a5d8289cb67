"""Baselines exact on small synthetic histories."""

import numpy as np
import pytest

from pipeline.stages.evaluate.baselines import (
    BASELINE_NAMES,
    all_baselines,
    constant,
    fit_history_ridge,
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
    ridge = fit_history_ridge(hv, hk, np.full((4, N), 3.0), np.zeros((4, N)))
    out = all_baselines(hv, hk, N, np.full(N, 2.0), np.zeros(N), history_model=ridge)
    assert tuple(out) == BASELINE_NAMES
    assert "history_ridge" not in all_baselines(hv, hk, N, np.full(N, 2.0), np.zeros(N))
    for v, k in out.values():
        assert v.shape == k.shape == (4, N)
    np.testing.assert_allclose(out["constant"][0], 3.0)
    np.testing.assert_allclose(out["linear_extrapolation"][0], 3.0)
    np.testing.assert_allclose(out["train_mean"][0], 2.0)


def test_history_ridge_recovers_an_exact_linear_map():
    """Targets that are a linear function of the history are fit almost exactly (tiny penalty, many samples)."""
    rng = np.random.default_rng(1)
    m = 400
    hv = rng.uniform(0, 30, (m, N_H))
    hk = rng.uniform(-0.05, 0.05, (m, N_H))
    tv = hv[:, -1:] + 0.5 * (hv[:, -1:] - hv[:, :1]) * T_FUT  # keeps going at the history's average acceleration
    tk = np.repeat(hk[:, -1:], N, axis=1) * 0.9
    ridge = fit_history_ridge(hv, hk, tv, tk, alpha=1e-6)
    v, k = ridge.predict(hv[:50], hk[:50])
    np.testing.assert_allclose(v, np.maximum(tv[:50], 0.0), atol=1e-5)
    np.testing.assert_allclose(k, tk[:50], atol=1e-8)
    with pytest.raises(ValueError):
        ridge.predict(hv[:, :10], hk[:, :10])
    with pytest.raises(ValueError):
        fit_history_ridge(hv[:0], hk[:0], tv[:0], tk[:0])


def synthetic_set(n_clips: int, seed: int) -> tuple[np.ndarray, ...]:
    """(clip, history v, history k, future v, future k) of every 1-s window of the synthetic scenarios, 30 Hz."""
    from pipeline.standins.trajectory import scenario_for

    rows = []
    for clip in range(n_clips):
        trajectory = scenario_for(clip, seed)
        for now_s in range(1, 19):
            t_hist = np.round((now_s - 1 + (np.arange(N_H) + 1) / N_H) * 1e6).astype(np.int64)
            t_fut = np.round((now_s + (np.arange(N) + 1) / N) * 1e6).astype(np.int64)
            hist, fut = trajectory.at(t_hist), trajectory.at(t_fut)
            rows.append((clip, hist.speed, hist.curvature, fut.speed, fut.curvature))
    clip = np.array([r[0] for r in rows])
    return (clip, *(np.stack([r[i] for r in rows]) for i in range(1, 5)))


def test_history_ridge_beats_the_train_mean_on_the_synthetic_scenarios():
    """Split by clip (no window of a test clip is fit); the learned history baseline must beat the train mean."""
    clip, hv, hk, tv, tk = synthetic_set(n_clips=48, seed=3)
    train, test = clip < 36, clip >= 36
    ridge = fit_history_ridge(hv[train], hk[train], tv[train], tk[train])
    pv, pk = ridge.predict(hv[test], hk[test])
    mv, mk = train_mean_profile(tv[train], tk[train])
    ridge_v, mean_v = np.mean(np.abs(pv - tv[test])), np.mean(np.abs(mv - tv[test]))
    ridge_k, mean_k = np.mean(np.abs(pk - tk[test])), np.mean(np.abs(mk - tk[test]))
    print(f"velocity MAE ridge {ridge_v:.3f} vs train mean {mean_v:.3f} m/s; curvature {ridge_k:.2e} vs {mean_k:.2e}")
    assert ridge_v < 0.5 * mean_v
    assert ridge_k < 0.5 * mean_k


def test_train_moments_in_batches_match_the_in_memory_closed_form():
    """Fed in uneven batches, the streamed moments give the ridge of the textbook formula on all samples at once."""
    from pipeline.stages.evaluate.baselines import TrainMoments

    rng = np.random.default_rng(1)
    m = 500
    hv = rng.uniform(0, 30, (m, 1)) + np.cumsum(rng.normal(0, 0.05, (m, N_H)), axis=1)
    hk = rng.normal(0, 2e-3, (m, 1)) + np.cumsum(rng.normal(0, 1e-5, (m, N_H)), axis=1)
    tv = hv[:, -1:] + 0.3 * T_FUT + rng.normal(0, 0.05, (m, N))
    tk = hk[:, -1:] + rng.normal(0, 1e-5, (m, N))
    moments = TrainMoments()
    for a, b in ((0, 7), (7, 7), (7, 300), (300, 500)):
        moments.add(hv[a:b], hk[a:b], tv[a:b], tk[a:b])
    assert moments.count == m
    mv, mk = moments.mean_profile()
    np.testing.assert_allclose(mv, tv.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(mk, tk.mean(axis=0), rtol=1e-9, atol=1e-15)
    x, y = np.concatenate([hv, hk], axis=1), np.concatenate([tv, tk], axis=1)
    xs = (x - x.mean(axis=0)) / x.std(axis=0)
    ys = (y - y.mean(axis=0)) / y.std(axis=0)
    weights = np.linalg.solve(xs.T @ xs + np.eye(2 * N_H), xs.T @ ys)
    ridge = moments.fit_ridge()
    # Rounding (~1e-16) times the standardised Gram matrix's condition number (~2e4 here) is ~1e-12 of the largest
    # weight; single small weights differ more relative to themselves.
    assert np.abs(ridge.weights - weights).max() <= 1e-9 * np.abs(weights).max()
    pv, pk = ridge.predict(hv[:5], hk[:5])
    expected = (xs[:5] @ weights) * y.std(axis=0) + y.mean(axis=0)
    np.testing.assert_allclose(pv, np.maximum(expected[:, :N], 0), rtol=1e-9)
    np.testing.assert_allclose(pk, expected[:, N:], rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError):
        TrainMoments().fit_ridge()
