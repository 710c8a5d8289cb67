"""Pure error metrics for next-second (velocity, curvature) predictions: MAE/RMSE, error by horizon, ADE/FDE.

Arrays are batched as `(N, n)`: N samples, n future steps. Step k (0-based) is the target sampled at
`now + (k + 1) * dt` with `dt = horizon_s / n` (docs/ARCHITECTURE.md, timing conventions), so it covers the
interval `[k * dt, (k + 1) * dt]` after "now".

Path integration rule (`integrate_path`): speed and curvature are held constant over each step at that step's
sample value (the value at the end of the interval), and each step is integrated exactly as a circular arc
(a straight segment when the curvature is zero). Heading rate is `v * kappa`; the path starts at the origin facing
+x, with y to the left (positive curvature turns left). A constant (v, kappa) therefore integrates to the exact
circle arc. The same rule is applied to predictions and ground truth, so ADE/FDE compare like with like.

No I/O, no logging of results: numpy in, numpy out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HORIZON_POINTS_S: tuple[float, ...] = (0.5, 1.0)
"""Horizons (seconds after "now") reported separately by `score`."""


def _as_batch(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, n) or (n,), got {arr.shape}")
    return arr


def _check_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_batch(pred, "pred"), _as_batch(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred and true shapes differ: {p.shape} vs {t.shape}")
    return p, t


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error over all samples and steps (same unit as the inputs). NaN for empty input."""
    p, t = _check_pair(pred, true)
    return float(np.mean(np.abs(p - t))) if p.size else float("nan")


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error over all samples and steps (same unit as the inputs). NaN for empty input."""
    p, t = _check_pair(pred, true)
    return float(np.sqrt(np.mean((p - t) ** 2))) if p.size else float("nan")


def mae_by_step(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean absolute error per future step: (n,), averaged over the N samples."""
    p, t = _check_pair(pred, true)
    return np.mean(np.abs(p - t), axis=0)


def integrate_path(velocity: np.ndarray, curvature: np.ndarray, dt: float) -> np.ndarray:
    """Integrate speed and curvature into planar positions, starting at the origin facing +x.

    Args:
        velocity: (N, n) or (n,) speed, m/s, the value held over step k = `[k*dt, (k+1)*dt]`.
        curvature: same shape, 1/m, positive = left turn.
        dt: step length, s.

    Returns:
        (N, n, 2) positions in metres (x forward, y left at "now") at the end of each step, i.e. at the
        sample times `(k + 1) * dt`; (n, 2) for 1-D inputs. The origin itself is not included.

    Each step is an exact arc: with arc length `s = v*dt` and turn `dtheta = kappa*s`, the chord is
    `s * sinc(dtheta/2)` long in direction `theta + dtheta/2` (numerically stable as kappa -> 0).
    """
    squeeze = np.ndim(velocity) == 1
    v, k = _check_pair(velocity, curvature)
    if dt <= 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    arc = v * dt
    dtheta = k * arc
    theta_end = np.cumsum(dtheta, axis=1)
    theta_start = theta_end - dtheta
    # np.sinc(x) = sin(pi x) / (pi x); we need sin(u) / u with u = dtheta / 2.
    chord = arc * np.sinc(dtheta / (2.0 * np.pi))
    direction = theta_start + dtheta / 2.0
    steps = np.stack([chord * np.cos(direction), chord * np.sin(direction)], axis=-1)
    xy = np.cumsum(steps, axis=1)
    return xy[0] if squeeze else xy


def displacement_errors(pred_xy: np.ndarray, true_xy: np.ndarray) -> np.ndarray:
    """Euclidean distance between predicted and true positions: (N, n) metres from (N, n, 2) inputs."""
    p, t = np.asarray(pred_xy, dtype=np.float64), np.asarray(true_xy, dtype=np.float64)
    if p.shape != t.shape or p.shape[-1] != 2:
        raise ValueError(f"positions must have equal shapes (..., 2), got {p.shape} vs {t.shape}")
    return np.linalg.norm(p - t, axis=-1)


@dataclass(frozen=True)
class Scores:
    """Error summary of one predictor on a set of samples (NaN everywhere when there are no samples)."""

    n_samples: int  # N, samples scored
    velocity_mae: float  # m/s
    velocity_rmse: float  # m/s
    curvature_mae: float  # 1/m
    curvature_rmse: float  # 1/m
    ade: float  # m, mean distance between predicted and true path over all steps
    fde: float  # m, mean distance at the last step (horizon end)
    velocity_mae_by_step: np.ndarray  # (n,) m/s
    curvature_mae_by_step: np.ndarray  # (n,) 1/m
    displacement_by_step: np.ndarray  # (n,) m, mean position error at each step
    step_times_s: np.ndarray  # (n,) s, sample time of each step after "now"

    def at_horizon(self, time_s: float) -> dict[str, float]:
        """Velocity/curvature MAE and displacement error at the step nearest `time_s` seconds."""
        n = len(self.step_times_s)
        k = int(np.argmin(np.abs(self.step_times_s - time_s))) if n else 0
        if self.n_samples == 0 or n == 0:
            nan = float("nan")
            return {"time_s": time_s, "velocity_mae": nan, "curvature_mae": nan, "displacement": nan}
        return {
            "time_s": float(self.step_times_s[k]),
            "velocity_mae": float(self.velocity_mae_by_step[k]),
            "curvature_mae": float(self.curvature_mae_by_step[k]),
            "displacement": float(self.displacement_by_step[k]),
        }

    def displacement_at(self, time_s: float) -> float:
        """Mean position error (m) at the step nearest `time_s` s: the path-L2 of open-loop planning benchmarks."""
        return self.at_horizon(time_s)["displacement"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (NaN becomes None); `displacement_<t>s` is `displacement_at(t)` per HORIZON_POINTS_S."""

        def clean(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        return {
            "n_samples": self.n_samples,
            "velocity_mae": clean(self.velocity_mae),
            "velocity_rmse": clean(self.velocity_rmse),
            "curvature_mae": clean(self.curvature_mae),
            "curvature_rmse": clean(self.curvature_rmse),
            "ade": clean(self.ade),
            "fde": clean(self.fde),
            **{f"displacement_{t:g}s": clean(self.displacement_at(t)) for t in HORIZON_POINTS_S},
            "at_horizon": {
                f"{t:g}s": {key: clean(val) for key, val in self.at_horizon(t).items()} for t in HORIZON_POINTS_S
            },
            "by_step": {
                "time_s": [float(t) for t in self.step_times_s],
                "velocity_mae": [clean(x) for x in self.velocity_mae_by_step],
                "curvature_mae": [clean(x) for x in self.curvature_mae_by_step],
                "displacement": [clean(x) for x in self.displacement_by_step],
            },
        }


def score(
    pred_velocity: np.ndarray,
    pred_curvature: np.ndarray,
    true_velocity: np.ndarray,
    true_curvature: np.ndarray,
    horizon_s: float = 1.0,
) -> Scores:
    """Score predictions against ground truth.

    Args:
        pred_velocity, true_velocity: (N, n) m/s.
        pred_curvature, true_curvature: (N, n) 1/m.
        horizon_s: time of the last step after "now", s (the step length is `horizon_s / n`).

    Raises:
        ValueError: shapes differ or the inputs are not finite.
    """
    pv, tv = _check_pair(pred_velocity, true_velocity)
    pk, tk = _check_pair(pred_curvature, true_curvature)
    if pv.shape != pk.shape:
        raise ValueError(f"velocity and curvature shapes differ: {pv.shape} vs {pk.shape}")
    for name, arr in (("pred_velocity", pv), ("pred_curvature", pk), ("true_velocity", tv), ("true_curvature", tk)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} has non-finite values")
    n_samples, n = pv.shape
    dt = horizon_s / n if n else horizon_s
    times = (np.arange(n) + 1) * dt
    if n_samples == 0:
        empty = np.full(n, np.nan)
        nan = float("nan")
        return Scores(0, nan, nan, nan, nan, nan, nan, empty, empty.copy(), empty.copy(), times)
    pred_xy = integrate_path(pv, pk, dt)
    true_xy = integrate_path(tv, tk, dt)
    disp = displacement_errors(pred_xy, true_xy)
    return Scores(
        n_samples=n_samples,
        velocity_mae=mae(pv, tv),
        velocity_rmse=rmse(pv, tv),
        curvature_mae=mae(pk, tk),
        curvature_rmse=rmse(pk, tk),
        ade=float(np.mean(disp)),
        fde=float(np.mean(disp[:, -1])),
        velocity_mae_by_step=mae_by_step(pv, tv),
        curvature_mae_by_step=mae_by_step(pk, tk),
        displacement_by_step=np.mean(disp, axis=0),
        step_times_s=times,
    )


def per_sample_errors(
    pred_velocity: np.ndarray,
    pred_curvature: np.ndarray,
    true_velocity: np.ndarray,
    true_curvature: np.ndarray,
    horizon_s: float = 1.0,
) -> dict[str, np.ndarray]:
    """Per-sample errors, each (N,): `velocity_mae` m/s, `curvature_mae` 1/m, `ade` m, `fde` m."""
    pv, tv = _check_pair(pred_velocity, true_velocity)
    pk, tk = _check_pair(pred_curvature, true_curvature)
    n = pv.shape[1]
    dt = horizon_s / n if n else horizon_s
    if pv.shape[0] == 0 or n == 0:
        empty = np.zeros(pv.shape[0])
        return {"velocity_mae": empty, "curvature_mae": empty.copy(), "ade": empty.copy(), "fde": empty.copy()}
    disp = displacement_errors(integrate_path(pv, pk, dt), integrate_path(tv, tk, dt))
    return {
        "velocity_mae": np.mean(np.abs(pv - tv), axis=1),
        "curvature_mae": np.mean(np.abs(pk - tk), axis=1),
        "ade": np.mean(disp, axis=1),
        "fde": disp[:, -1],
    }


__all__ = [
    "HORIZON_POINTS_S",
    "Scores",
    "displacement_errors",
    "integrate_path",
    "mae",
    "mae_by_step",
    "per_sample_errors",
    "rmse",
    "score",
]
