"""Pure reference predictors for next-second (velocity, curvature), scored on the same samples as the model.

Times follow docs/ARCHITECTURE.md: the history sample k of n_h is at `-window_s + (k + 1) * window_s / n_h`
seconds relative to "now" (its last sample is "now", t = 0); the future step k of n is at
`(k + 1) * horizon_s / n`. Every function returns a `(velocity, curvature)` pair of (N, n) float64 arrays in
m/s and 1/m.
"""

from __future__ import annotations

import numpy as np

BASELINE_NAMES: tuple[str, ...] = ("zero_motion", "train_mean", "constant", "linear_extrapolation")
"""Baselines reported beside the model, in table order."""


def _history(history_velocity: np.ndarray, history_curvature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hv = np.atleast_2d(np.asarray(history_velocity, dtype=np.float64))
    hk = np.atleast_2d(np.asarray(history_curvature, dtype=np.float64))
    if hv.shape != hk.shape or hv.ndim != 2 or hv.shape[1] == 0:
        raise ValueError(f"history arrays must share a non-empty (N, n_h) shape, got {hv.shape} and {hk.shape}")
    return hv, hk


def zero_motion(n_samples: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The vehicle stands still: zero speed and zero curvature, (N, n) each."""
    return np.zeros((n_samples, n)), np.zeros((n_samples, n))


def train_mean_profile(train_velocity: np.ndarray, train_curvature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-step mean of the training targets: (M, n) each -> (n,) m/s and (n,) 1/m.

    Raises:
        ValueError: no training samples, or shapes differ.
    """
    tv = np.asarray(train_velocity, dtype=np.float64)
    tk = np.asarray(train_curvature, dtype=np.float64)
    if tv.ndim != 2 or tv.shape != tk.shape or tv.shape[0] == 0:
        raise ValueError(f"train targets must share a non-empty (M, n) shape, got {tv.shape} and {tk.shape}")
    return tv.mean(axis=0), tk.mean(axis=0)


def train_mean(n_samples: int, mean_velocity: np.ndarray, mean_curvature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every sample gets the training split's mean profile (from `train_mean_profile`): (N, n) each."""
    mv = np.asarray(mean_velocity, dtype=np.float64)
    mk = np.asarray(mean_curvature, dtype=np.float64)
    return np.tile(mv, (n_samples, 1)), np.tile(mk, (n_samples, 1))


def constant(history_velocity: np.ndarray, history_curvature: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold the last history value ("now") for the whole next second.

    Args:
        history_velocity, history_curvature: (N, n_h) m/s and 1/m, the input second.
        n: future steps.
    """
    hv, hk = _history(history_velocity, history_curvature)
    return np.repeat(hv[:, -1:], n, axis=1), np.repeat(hk[:, -1:], n, axis=1)


def linear_extrapolation(
    history_velocity: np.ndarray,
    history_curvature: np.ndarray,
    n: int,
    window_s: float = 1.0,
    horizon_s: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line through the input second, evaluated at the future step times; speed clamped at >= 0.

    Args:
        history_velocity, history_curvature: (N, n_h) m/s and 1/m at times `-window_s + (k+1)*window_s/n_h`.
        n: future steps, at times `(k+1)*horizon_s/n`.
        window_s, horizon_s: lengths of the input second and of the predicted future, s.
    """
    hv, hk = _history(history_velocity, history_curvature)
    n_h = hv.shape[1]
    t_hist = -window_s + (np.arange(n_h) + 1) * window_s / n_h
    t_future = (np.arange(n) + 1) * horizon_s / n

    def fit(y: np.ndarray) -> np.ndarray:
        if n_h == 1:  # one point: no slope to fit, hold it
            return np.repeat(y, n, axis=1)
        tc = t_hist - t_hist.mean()
        slope = (y - y.mean(axis=1, keepdims=True)) @ tc / np.sum(tc**2)
        intercept = y.mean(axis=1) - slope * t_hist.mean()
        return intercept[:, None] + slope[:, None] * t_future[None, :]

    return np.maximum(fit(hv), 0.0), fit(hk)


def all_baselines(
    history_velocity: np.ndarray,
    history_curvature: np.ndarray,
    n: int,
    mean_velocity: np.ndarray,
    mean_curvature: np.ndarray,
    window_s: float = 1.0,
    horizon_s: float = 1.0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every baseline of `BASELINE_NAMES` on the same N samples: name -> ((N, n) m/s, (N, n) 1/m)."""
    hv, hk = _history(history_velocity, history_curvature)
    n_samples = hv.shape[0]
    return {
        "zero_motion": zero_motion(n_samples, n),
        "train_mean": train_mean(n_samples, mean_velocity, mean_curvature),
        "constant": constant(hv, hk, n),
        "linear_extrapolation": linear_extrapolation(hv, hk, n, window_s=window_s, horizon_s=horizon_s),
    }


__all__ = [
    "BASELINE_NAMES",
    "all_baselines",
    "constant",
    "linear_extrapolation",
    "train_mean",
    "train_mean_profile",
    "zero_motion",
]
