"""Pure reference predictors of the future (x, y) trajectory from the past one (`history_xyh`) alone.

Frames and times follow the segment record (docs/ARCHITECTURE.md): rows are [x m, y m, heading rad] in the ego frame
at the window's end (x forward, y left, heading counter-clockwise from x); history row j of H is at
`last_time_s - (H - 1 - j) / history_hz` s (oldest first; `last_time_s` = 0 when the last row is the window's end
itself), future point k of n at `(k + 1) / target_hz` s. Every predictor returns (N, n, 2) float64 positions, m.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pipeline.stages.evaluate.baselines import RidgeMoments, StandardisedRidge

TRAJECTORY_BASELINE_NAMES: tuple[str, ...] = ("constant_velocity", "ctrv", "history_ridge")
"""Trajectory baselines reported beside the model, in table order (`history_ridge` needs a fitted ridge)."""

RIDGE_ALPHA = 1.0
"""L2 penalty of `fit_trajectory_ridge`, on standardised features (one unit per feature)."""


def _history(history_xyh: np.ndarray, min_rows: int = 2) -> np.ndarray:
    h = np.asarray(history_xyh, dtype=np.float64)
    if h.ndim == 2:
        h = h[None]
    if h.ndim != 3 or h.shape[2] != 3 or h.shape[1] < min_rows:
        raise ValueError(f"history_xyh must have shape (N, H >= {min_rows}, 3), got {h.shape}")
    return h


def _future_times(n: int, target_hz: float, last_time_s: float) -> np.ndarray:
    """(n,) time of each future point after the last history row, s."""
    return (np.arange(n) + 1) / target_hz - last_time_s


def constant_velocity(
    history_xyh: np.ndarray, n: int, target_hz: float, history_hz: float, last_time_s: float = 0.0
) -> np.ndarray:
    """Hold the velocity vector of the last two history rows: a straight line at constant speed.

    Args:
        history_xyh: (N, H >= 2, 3) past rows [m, m, rad].
        n, target_hz: future points and their rate, Hz.
        history_hz: rate of the history rows, Hz.
        last_time_s: time of the last history row relative to the window's end, s (<= 0).

    Returns:
        (N, n, 2) positions, m.
    """
    h = _history(history_xyh)
    velocity = (h[:, -1, :2] - h[:, -2, :2]) * history_hz  # (N, 2) m/s
    tau = _future_times(n, target_hz, last_time_s)
    return h[:, -1, None, :2] + velocity[:, None, :] * tau[None, :, None]


def ctrv(history_xyh: np.ndarray, n: int, target_hz: float, history_hz: float, last_time_s: float = 0.0) -> np.ndarray:
    """Constant turn rate and velocity: speed and yaw rate from the last two history rows, along a circular arc.

    The speed is the chord of the last history step corrected to the arc length (`chord * (w dt / 2) /
    sin(w dt / 2)`), signed by the chord's direction against the mean heading (negative when reversing), so a
    history on one circle at one speed is continued exactly; the arc starts at the last row's heading.

    Args: as `constant_velocity`.

    Returns:
        (N, n, 2) positions, m.
    """
    h = _history(history_xyh)
    dt = 1.0 / history_hz
    chord = h[:, -1, :2] - h[:, -2, :2]
    turn = np.angle(np.exp(1j * (h[:, -1, 2] - h[:, -2, 2])))  # wrapped to (-pi, pi], rad
    mid_heading = h[:, -1, 2] - turn / 2
    forward = np.sign(chord[:, 0] * np.cos(mid_heading) + chord[:, 1] * np.sin(mid_heading))
    speed = forward * np.hypot(chord[:, 0], chord[:, 1]) / np.sinc(turn / (2 * np.pi)) / dt  # m/s
    yaw_rate = turn / dt  # rad/s
    tau = _future_times(n, target_hz, last_time_s)[None, :]  # (1, n) s
    theta0 = h[:, -1, 2, None]
    wt = yaw_rate[:, None] * tau
    # Displacement along an arc of heading rate w over tau: v * integral of (cos, sin)(theta0 + w s) ds, written
    # with sinc so that w -> 0 gives the straight line without a division by zero.
    along = speed[:, None] * tau * np.sinc(wt / (2 * np.pi))
    dx = along * np.cos(theta0 + wt / 2)
    dy = along * np.sin(theta0 + wt / 2)
    return np.stack([h[:, -1, None, 0] + dx, h[:, -1, None, 1] + dy], axis=-1)


@dataclass(frozen=True)
class TrajectoryRidge(StandardisedRidge):
    """Ridge regression from the flattened history rows (d = 3 H: H x [x m, y m, heading rad]) to the flattened
    future points (t = 2 n: n x [x m, y m]), fit on the train split."""

    def predict(self, history_xyh: np.ndarray) -> np.ndarray:
        """(N, H, 3) past rows -> (N, n, 2) positions, m.

        Raises:
            ValueError: the history length differs from the one fit.
        """
        h = _history(history_xyh, min_rows=1)
        if 3 * h.shape[1] != len(self.x_mean):
            raise ValueError(f"history has {h.shape[1]} rows, the ridge was fit on {len(self.x_mean) // 3}")
        return self.apply(h.reshape(len(h), -1)).reshape(len(h), -1, 2)


def fit_trajectory_ridge(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], alpha: float = RIDGE_ALPHA
) -> TrajectoryRidge:
    """Fit `TrajectoryRidge` in closed form on train samples fed a batch at a time (`RidgeMoments`: memory
    independent of their number; samples held in memory are one batch).

    Args:
        batches: (history_xyh, future_xy) pairs of M_i samples each: (M_i, H, 3) past rows [m, m, rad] and
            (M_i, n, 2) future positions, m; H and n the same in every batch.
        alpha: L2 penalty on standardised weights (> 0 keeps the solve well posed for any M).

    Raises:
        ValueError: no samples, mismatched shapes, or alpha <= 0.
    """
    moments = RidgeMoments()
    for history_xyh, future_xy in batches:
        h = _history(history_xyh, min_rows=1)
        f = np.asarray(future_xy, dtype=np.float64)
        if f.ndim != 3 or f.shape[2] != 2 or f.shape[0] != h.shape[0]:
            raise ValueError(f"need matching samples, got history {h.shape} and future {f.shape}")
        moments.add(h.reshape(len(h), 3 * h.shape[1]), f.reshape(len(f), 2 * f.shape[1]))
    return moments.fit(TrajectoryRidge, alpha)


def all_trajectory_baselines(
    history_xyh: np.ndarray,
    n: int,
    target_hz: float,
    history_hz: float,
    last_time_s: float = 0.0,
    ridge: TrajectoryRidge | None = None,
) -> dict[str, np.ndarray]:
    """Every baseline of `TRAJECTORY_BASELINE_NAMES` on the same N samples: name -> (N, n, 2) positions, m
    (`history_ridge` when `ridge`, fit on the train split, is given)."""
    out = {
        "constant_velocity": constant_velocity(history_xyh, n, target_hz, history_hz, last_time_s),
        "ctrv": ctrv(history_xyh, n, target_hz, history_hz, last_time_s),
    }
    if ridge is not None:
        out["history_ridge"] = ridge.predict(history_xyh)
    return out


__all__ = [
    "RIDGE_ALPHA",
    "TRAJECTORY_BASELINE_NAMES",
    "TrajectoryRidge",
    "all_trajectory_baselines",
    "constant_velocity",
    "ctrv",
    "fit_trajectory_ridge",
]
