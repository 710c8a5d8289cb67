"""Pure reference predictors for next-second (velocity, curvature), scored on the same samples as the model.

Times follow docs/ARCHITECTURE.md: the history sample k of n_h is at `-window_s + (k + 1) * window_s / n_h`
seconds relative to "now" (its last sample is "now", t = 0); the future step k of n is at
`(k + 1) * horizon_s / n`. Every function returns a `(velocity, curvature)` pair of (N, n) float64 arrays in
m/s and 1/m.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

BASELINE_NAMES: tuple[str, ...] = ("zero_motion", "train_mean", "constant", "linear_extrapolation", "history_ridge")
"""Baselines reported beside the model, in table order (`history_ridge` needs a fitted `HistoryRidge`)."""

RIDGE_ALPHA = 1.0
"""L2 penalty of `fit_history_ridge`, on standardised features (one unit per feature)."""


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


@dataclass(frozen=True)
class StandardisedRidge:
    """Linear map fit by ridge regression on standardised columns: features and targets are centred and scaled by
    their train mean and std, so the penalty weighs every unit alike. `RidgeMoments.fit` makes one."""

    x_mean: np.ndarray  # (d,) feature means
    x_std: np.ndarray  # (d,) feature stds (1 where a feature is constant)
    y_mean: np.ndarray  # (t,) target means
    y_std: np.ndarray  # (t,) target stds (1 where a target is constant)
    weights: np.ndarray  # (d, t) on standardised values
    alpha: float

    def apply(self, features: np.ndarray) -> np.ndarray:
        """(N, d) features -> (N, t) targets, in the units they were fit in."""
        return (((features - self.x_mean) / self.x_std) @ self.weights) * self.y_std + self.y_mean


R = TypeVar("R", bound=StandardisedRidge)


class RidgeMoments:
    """Running count, mean and co-moment matrix of samples' [features, targets] columns, fed a batch at a time: a
    `StandardisedRidge` comes out in closed form with memory independent of the number of samples (batches merged
    with the pairwise update of Chan, Golub and LeVeque, stable in float64)."""

    def __init__(self) -> None:
        self.count = 0
        self.n_features = 0
        self.mean = np.zeros(0)  # (d + t,)
        self.comoment = np.zeros((0, 0))  # (d + t, d + t): sum of outer products of deviations from the mean

    def add(self, features: np.ndarray, targets: np.ndarray) -> None:
        """Add M samples: (M, d) features and (M, t) targets.

        Raises:
            ValueError: not two 2-D arrays of M rows, or widths that differ from earlier batches.
        """
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"need (M, d) features and (M, t) targets, got {x.shape} and {y.shape}")
        if self.count and (x.shape[1], x.shape[1] + y.shape[1]) != (self.n_features, len(self.mean)):
            earlier = f"{self.n_features} + {len(self.mean) - self.n_features}"
            raise ValueError(f"batch has {x.shape[1]} + {y.shape[1]} columns, earlier ones {earlier}")
        m = x.shape[0]
        if m == 0:
            return
        z = np.concatenate([x, y], axis=1)
        mean = z.mean(axis=0)
        deviation = z - mean
        comoment = deviation.T @ deviation
        if not self.count:
            self.n_features = x.shape[1]
            self.count, self.mean, self.comoment = m, mean, comoment
            return
        delta = mean - self.mean
        total = self.count + m
        self.comoment = self.comoment + comoment + np.outer(delta, delta) * (self.count * m / total)
        self.mean = self.mean + delta * (m / total)
        self.count = total

    def fit(self, kind: type[R], alpha: float) -> R:
        """The ridge of penalty `alpha` on standardised columns, in closed form (one d-square solve), as a `kind`.

        Raises:
            ValueError: no samples were added, or alpha <= 0.
        """
        if not self.count:
            raise ValueError("no training samples to fit the ridge on")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        d = self.n_features
        std = np.sqrt(np.maximum(np.diag(self.comoment), 0.0) / self.count)
        # A constant column (std at rounding level of its mean) is left unscaled, as np.std's exact 0 would be.
        std = np.where(std > 1e-12 * np.maximum(np.abs(self.mean), 1e-300), std, 1.0)
        gram = self.comoment[:d, :d] / np.outer(std[:d], std[:d]) + alpha * np.eye(d)
        cross = self.comoment[:d, d:] / np.outer(std[:d], std[d:])
        weights = np.linalg.solve(gram, cross)
        return kind(self.mean[:d], std[:d], self.mean[d:], std[d:], weights, float(alpha))


@dataclass(frozen=True)
class HistoryRidge(StandardisedRidge):
    """Ridge regression from the input second's (speed, curvature) to the next second's, fit on the train split.

    Features (d = 2 n_h) are the n_h history speeds then the n_h history curvatures; targets (t = 2 n) the n speeds
    then the n curvatures (m/s, 1/m). It is the history-only learned floor a video model must beat.
    """

    def predict(self, history_velocity: np.ndarray, history_curvature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, n_h) m/s and 1/m -> (N, n) m/s (clamped at >= 0) and (N, n) 1/m."""
        hv, hk = _history(history_velocity, history_curvature)
        if 2 * hv.shape[1] != len(self.x_mean):
            raise ValueError(f"history has {hv.shape[1]} steps, the ridge was fit on {len(self.x_mean) // 2}")
        y = self.apply(np.concatenate([hv, hk], axis=1))
        n = y.shape[1] // 2
        return np.maximum(y[:, :n], 0.0), y[:, n:]


class TrainMoments:
    """`RidgeMoments` of the train samples' [history speeds, history curvatures] -> [target speeds, target
    curvatures], fed a batch at a time: the train mean and the history ridge come out of it."""

    def __init__(self) -> None:
        self.moments = RidgeMoments()
        self.n_h = 0
        self.n = 0

    @property
    def count(self) -> int:
        """Samples added."""
        return self.moments.count

    def add(
        self,
        history_velocity: np.ndarray,
        history_curvature: np.ndarray,
        velocity: np.ndarray,
        curvature: np.ndarray,
    ) -> None:
        """Add M samples: (M, n_h) m/s and 1/m of the input second, (M, n) m/s and 1/m of the next one.

        Raises:
            ValueError: mismatched shapes, or shapes that differ from earlier batches.
        """
        hv, hk = _history(history_velocity, history_curvature)
        tv = np.atleast_2d(np.asarray(velocity, dtype=np.float64))
        tk = np.atleast_2d(np.asarray(curvature, dtype=np.float64))
        if tv.shape != tk.shape or tv.shape[0] != hv.shape[0]:
            raise ValueError(f"need matching samples, got history {hv.shape} and targets {tv.shape}, {tk.shape}")
        self.moments.add(np.concatenate([hv, hk], axis=1), np.concatenate([tv, tk], axis=1))
        if self.count:
            self.n_h, self.n = hv.shape[1], tv.shape[1]

    def mean_profile(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-step mean of the targets: (n,) m/s and (n,) 1/m (the `train_mean` baseline's profile).

        Raises:
            ValueError: no samples were added.
        """
        if not self.count:
            raise ValueError("no training samples")
        future = self.moments.mean[2 * self.n_h :]
        return future[: self.n].copy(), future[self.n :].copy()

    def fit_ridge(self, alpha: float = RIDGE_ALPHA) -> HistoryRidge:
        """`HistoryRidge` in closed form from the moments (one (2 n_h)-square solve).

        Raises:
            ValueError: no samples were added, or alpha <= 0.
        """
        return self.moments.fit(HistoryRidge, alpha)


def fit_history_ridge(
    history_velocity: np.ndarray,
    history_curvature: np.ndarray,
    velocity: np.ndarray,
    curvature: np.ndarray,
    alpha: float = RIDGE_ALPHA,
) -> HistoryRidge:
    """Fit `HistoryRidge` in closed form on M train samples held in memory (`TrainMoments` for a split streamed in
    batches).

    Args:
        history_velocity, history_curvature: (M, n_h) m/s and 1/m, the input second of each train sample.
        velocity, curvature: (M, n) m/s and 1/m, its next second.
        alpha: L2 penalty on standardised weights (> 0 keeps the solve well posed for any M).

    Raises:
        ValueError: no samples, mismatched shapes, or alpha <= 0.
    """
    moments = TrainMoments()
    moments.add(history_velocity, history_curvature, velocity, curvature)
    return moments.fit_ridge(alpha)


def all_baselines(
    history_velocity: np.ndarray,
    history_curvature: np.ndarray,
    n: int,
    mean_velocity: np.ndarray,
    mean_curvature: np.ndarray,
    window_s: float = 1.0,
    horizon_s: float = 1.0,
    history_model: HistoryRidge | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every baseline of `BASELINE_NAMES` on the same N samples: name -> ((N, n) m/s, (N, n) 1/m).

    `history_ridge` is included when `history_model` (fit on the train split) is given.
    """
    hv, hk = _history(history_velocity, history_curvature)
    n_samples = hv.shape[0]
    out = {
        "zero_motion": zero_motion(n_samples, n),
        "train_mean": train_mean(n_samples, mean_velocity, mean_curvature),
        "constant": constant(hv, hk, n),
        "linear_extrapolation": linear_extrapolation(hv, hk, n, window_s=window_s, horizon_s=horizon_s),
    }
    if history_model is not None:
        out["history_ridge"] = history_model.predict(hv, hk)
    return out


__all__ = [
    "BASELINE_NAMES",
    "RIDGE_ALPHA",
    "HistoryRidge",
    "RidgeMoments",
    "StandardisedRidge",
    "TrainMoments",
    "all_baselines",
    "constant",
    "fit_history_ridge",
    "linear_extrapolation",
    "train_mean",
    "train_mean_profile",
    "zero_motion",
]
