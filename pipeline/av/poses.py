"""Pure pose math: the ego trajectory around a time, in the ego frame at that time (no I/O).

Poses are interpolated as NVIDIA's devkit does (`physical_ai_av.egomotion.EgomotionState`, default rigid-transform
interpolation): the position with a cubic spline (scipy `CubicSpline`, not-a-knot ends), the orientation with
`Slerp`, both over times relative to the first sample and never extrapolated. The time grids follow Alpamayo's loader
(`load_physical_aiavdataset`): future steps at t0 + (k + 1) / hz, k = 0..N-1, and history steps at
t0 - (H - 1 - k) / hz, k = 0..H-1, oldest first, so the last history row is t0 itself (0, 0, 0). Positions are
brought into the ego frame at t0 as R0^-1 (p - p0) (x forward, y left); the heading is the yaw of R0^-1 R, rad,
counter-clockwise from x. Times are int64 µs on the clip timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, Slerp

from pipeline.av.egomotion import MAX_GAP_US, EgomotionTable, span_reasons


@dataclass(frozen=True)
class TrajectoryTargets:
    """Ego-frame trajectories of S segments. Rows of skipped segments are NaN."""

    # (S, N, 3) float64 [x m, y m, heading rad] at end + (k + 1) / target_hz.
    future_xyh: np.ndarray
    # (S, H, 3) float64 the same at end - (H - 1 - k) / history_hz, oldest first (the last is the end itself).
    history_xyh: np.ndarray
    # (S,) bool: the segment has a trajectory.
    valid: np.ndarray
    # S entries: None for a valid segment, else a one-line reason.
    reasons: list[str | None]


def step_offsets_us(n: int, hz: float, future: bool) -> np.ndarray:
    """(n,) int64 µs offsets from t0: (k + 1) / hz for the future, -(n - 1 - k) / hz for the history (k = 0..n-1)."""
    k = np.arange(n, dtype=np.float64)
    steps = k + 1 if future else k - (n - 1)
    return np.round(steps * (1e6 / hz)).astype(np.int64)


def usable_poses(pose: np.ndarray) -> np.ndarray:
    """(N,) bool: pose rows (N, 7) that are finite with a quaternion of non-zero norm."""
    return np.isfinite(pose).all(axis=1) & (np.linalg.norm(np.nan_to_num(pose[:, 3:]), axis=1) > 1e-6)


def interpolate_poses(table: EgomotionTable, t_us: np.ndarray) -> tuple[np.ndarray, Rotation]:
    """Positions (*t.shape, 3) m (anchor frame) and rotations (flat, t.size) at `t_us` (int64 µs, inside the table's
    time range: the caller checks it). Rows with an unusable pose are left out of the interpolants (the caller skips
    windows they touch). Raises ValueError when the table has no pose columns or fewer than 2 usable rows."""
    if table.pose is None:
        raise ValueError("egomotion table has no pose columns (x, y, z, qx, qy, qz, qw)")
    usable = usable_poses(table.pose)
    if usable.sum() < 2:
        raise ValueError(f"egomotion table has {int(usable.sum())} usable pose row(s), need at least 2")
    ts, pose = table.timestamp_us[usable], table.pose[usable]
    x = (ts - ts[0]).astype(np.float64)
    q = (np.asarray(t_us, dtype=np.int64) - ts[0]).astype(np.float64)
    position = CubicSpline(x, pose[:, :3], extrapolate=False)(q.ravel()).reshape(*q.shape, 3)
    rotation = Slerp(x, Rotation.from_quat(pose[:, 3:]))(q.ravel())
    return position, rotation


def ego_frame_xyh(
    position: np.ndarray, rotation: Rotation, origin: np.ndarray, origin_rotation: Rotation
) -> np.ndarray:
    """Poses in the ego frame of an origin pose -> (S, K, 3) [x m, y m, heading rad].

    position: (S, K, 3) m; rotation: S*K rotations (row-major); origin: (S, 3) m; origin_rotation: S rotations.
    """
    s, k = position.shape[:2]
    if s * k == 0:
        return np.zeros((s, k, 3))
    rel_inv = Rotation.from_quat(np.repeat(origin_rotation.inv().as_quat(), k, axis=0))
    local = rel_inv.apply((position - origin[:, None, :]).reshape(-1, 3))
    forward = (rel_inv * rotation).apply(np.array([1.0, 0.0, 0.0]))
    heading = np.arctan2(forward[:, 1], forward[:, 0])
    return np.concatenate([local[:, :2], heading[:, None]], axis=1).reshape(s, k, 3)


def trajectory_targets(
    table: EgomotionTable,
    end_us: np.ndarray,
    n_future: int,
    future_hz: float,
    n_history: int,
    history_hz: float,
    max_gap_us: int = MAX_GAP_US,
) -> TrajectoryTargets:
    """Future and history ego-frame trajectories for every segment end (µs), vectorised.

    A segment is invalid (NaN rows, reason given) when its span [first history time, last future time] is not inside
    the egomotion time range (no extrapolation), when a row with a NaN or infinite pose touches it, or when two
    consecutive samples in it are more than `max_gap_us` apart; also when the table has no pose columns.
    """
    end_us = np.asarray(end_us, dtype=np.int64).reshape(-1)
    fut_t = end_us[:, None] + step_offsets_us(n_future, future_hz, future=True)[None, :]
    hist_t = end_us[:, None] + step_offsets_us(n_history, history_hz, future=False)[None, :]
    span_lo = np.minimum(hist_t[:, 0] if n_history else end_us, end_us)
    span_hi = fut_t[:, -1] if n_future else end_us
    s = len(end_us)
    if table.pose is None:
        reasons: list[str | None] = ["egomotion has no pose columns (x, y, z, qx, qy, qz, qw)"] * s
    else:
        finite = usable_poses(table.pose)
        infinite = np.isinf(table.pose).any(axis=1)
        reasons = span_reasons(table.timestamp_us, finite, infinite, span_lo, span_hi, max_gap_us)
    valid = np.array([r is None for r in reasons], dtype=bool)
    future = np.full((s, n_future, 3), np.nan)
    history = np.full((s, n_history, 3), np.nan)
    if valid.any():
        times = np.concatenate([end_us[valid, None], hist_t[valid], fut_t[valid]], axis=1)
        position, rotation = interpolate_poses(table, times)
        width = times.shape[1]
        origin_rotation = rotation[np.arange(valid.sum()) * width]
        xyh = ego_frame_xyh(position, rotation, position[:, 0], origin_rotation)
        history[valid] = xyh[:, 1 : 1 + n_history]
        future[valid] = xyh[:, 1 + n_history :]
    return TrajectoryTargets(future_xyh=future, history_xyh=history, valid=valid, reasons=reasons)


__all__ = [
    "TrajectoryTargets",
    "ego_frame_xyh",
    "interpolate_poses",
    "step_offsets_us",
    "trajectory_targets",
    "usable_poses",
]
