"""Pure motion math: clean an egomotion table, interpolate speed and curvature, and compute segment targets.

No I/O: functions take a pandas DataFrame or numpy arrays and return numpy arrays. All times are int64
microseconds on the clip timeline (see docs/ARCHITECTURE.md, "Timing conventions").

Interpolation follows NVIDIA's devkit (`physical_ai_av.egomotion.EgomotionState`): velocity and curvature are
interpolated linearly between samples and never extrapolated. Speed is the norm of the interpolated anchor-frame
velocity vector (rotation-invariant, so the anchor frame does not matter). Curvature is in 1/m, positive for a
left turn (counter-clockwise seen from above, with x forward, y left, z up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Longest allowed interval between two egomotion samples inside a segment's sample span.
MAX_GAP_US = 200_000
# Columns every egomotion table must have (velocity is in the anchor frame).
REQUIRED_COLUMNS = ("timestamp", "vx", "vy", "vz", "curvature")
# Pose columns (position in the anchor frame, m; orientation quaternion, scalar last), read where present.
POSE_COLUMNS = ("x", "y", "z", "qx", "qy", "qz", "qw")


class EgomotionError(ValueError):
    """The egomotion table cannot be used at all (missing columns, too few rows). The message is the reason."""


@dataclass(frozen=True)
class EgomotionTable:
    """A cleaned egomotion table: sorted, duplicate timestamps dropped. NaN rows are kept (and flagged)."""

    # (N,) int64 µs, strictly increasing.
    timestamp_us: np.ndarray
    # (N, 3) float64 m/s, anchor frame (vx, vy, vz).
    velocity: np.ndarray
    # (N,) float64 1/m, positive = left turn.
    curvature: np.ndarray
    # Rows dropped because their timestamp repeated an earlier row's.
    n_duplicates: int
    # Of those, rows whose values differ from the kept row's (a conflict resolved by keeping the first row).
    n_conflicting: int = 0
    # Timestamp of the first such conflict, µs; None when there is none.
    first_conflict_us: int | None = None
    # (N, 7) float64 x, y, z (m, anchor frame), qx, qy, qz, qw (scalar last); None when the table has no pose.
    pose: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.timestamp_us)
        if self.velocity.shape != (n, 3) or self.curvature.shape != (n,):
            raise EgomotionError(f"egomotion arrays disagree: {n} timestamps, velocity {self.velocity.shape}")
        if n and np.any(np.diff(self.timestamp_us) <= 0):
            raise EgomotionError("egomotion timestamps are not strictly increasing after cleaning")

    @property
    def finite(self) -> np.ndarray:
        """(N,) bool: rows whose velocity and curvature are all finite."""
        return np.isfinite(self.velocity).all(axis=1) & np.isfinite(self.curvature)


def clean_egomotion(df: pd.DataFrame) -> EgomotionTable:
    """Sort an egomotion DataFrame by `timestamp` and drop rows whose timestamp repeats (the first one is kept).

    Dropped rows whose values differ from the kept one are counted in `n_conflicting`. Raises `EgomotionError`
    when a required column is missing or fewer than 2 distinct timestamps remain.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise EgomotionError(f"egomotion table lacks column(s) {', '.join(missing)}")
    ts = df["timestamp"].to_numpy()
    if not np.issubdtype(ts.dtype, np.integer):
        raise EgomotionError(f"egomotion timestamp column is {ts.dtype}, expected integer microseconds")
    ts = ts.astype(np.int64)
    order = np.argsort(ts, kind="stable")
    ts_sorted = ts[order]
    keep = np.ones(len(ts_sorted), dtype=bool)
    keep[1:] = ts_sorted[1:] != ts_sorted[:-1]
    rows = order[keep]
    if len(rows) < 2:
        raise EgomotionError(f"egomotion table has {len(rows)} distinct timestamp(s), need at least 2")
    value_columns = [c for c in df.columns if c != "timestamp" and pd.api.types.is_numeric_dtype(df[c])]
    values = df[value_columns].to_numpy(dtype=np.float64)[order]
    kept = values[np.maximum.accumulate(np.where(keep, np.arange(len(keep)), 0))]
    same = (values == kept) | (np.isnan(values) & np.isnan(kept))
    conflicting = ~keep & ~same.all(axis=1)
    return EgomotionTable(
        timestamp_us=ts[rows],
        velocity=df[["vx", "vy", "vz"]].to_numpy(dtype=np.float64)[rows],
        curvature=df["curvature"].to_numpy(dtype=np.float64)[rows],
        n_duplicates=int(len(ts) - len(rows)),
        n_conflicting=int(conflicting.sum()),
        first_conflict_us=int(ts_sorted[np.argmax(conflicting)]) if conflicting.any() else None,
        pose=df[list(POSE_COLUMNS)].to_numpy(dtype=np.float64)[rows] if set(POSE_COLUMNS) <= set(df.columns) else None,
    )


def interpolate_velocity(table: EgomotionTable, t_us: np.ndarray) -> np.ndarray:
    """Linearly interpolated anchor-frame velocity at `t_us` (any shape) -> (*t.shape, 3) m/s; NaN outside range."""
    t = np.asarray(t_us)
    out = np.stack([_interp(table, t, table.velocity[:, j]) for j in range(3)], axis=-1)
    return out


def interpolate_speed(table: EgomotionTable, t_us: np.ndarray) -> np.ndarray:
    """Speed (norm of the interpolated velocity vector) at `t_us` -> same shape as `t_us`, m/s; NaN outside range."""
    return np.linalg.norm(interpolate_velocity(table, t_us), axis=-1)


def interpolate_curvature(table: EgomotionTable, t_us: np.ndarray) -> np.ndarray:
    """Linearly interpolated curvature at `t_us` -> same shape, 1/m (positive = left); NaN outside range."""
    return _interp(table, np.asarray(t_us), table.curvature)


def _interp(table: EgomotionTable, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    # Times relative to the first sample, as the devkit does, keep float64 exact for µs clip timelines.
    t0 = table.timestamp_us[0]
    x = (table.timestamp_us - t0).astype(np.float64)
    q = (t.astype(np.int64) - t0).astype(np.float64)
    out = np.interp(q.ravel(), x, values).reshape(q.shape)
    outside = (q < 0) | (q > x[-1])
    out[outside] = np.nan
    return out


@dataclass(frozen=True)
class SegmentTargets:
    """Targets for S segments, sampled at n times each. Rows of skipped segments are NaN."""

    # (S, n) float64 m/s: speed at end + (k+1) * horizon / n, k = 0..n-1 (the labels).
    velocity: np.ndarray
    # (S, n) float64 1/m: curvature at the same times.
    curvature: np.ndarray
    # (S, n) float64 m/s: speed at end - window + (k+1) * window / n (the input second; the last is "now").
    history_velocity: np.ndarray
    # (S, n) float64 1/m: curvature at the history times.
    history_curvature: np.ndarray
    # (S,) bool: the segment has valid targets.
    valid: np.ndarray
    # S entries: None for a valid segment, else a one-line reason.
    reasons: list[str | None]

    @property
    def speed_mean(self) -> np.ndarray:
        """(S,) float64 m/s: mean speed over the input window."""
        return self.history_velocity.mean(axis=1)

    @property
    def speed_last(self) -> np.ndarray:
        """(S,) float64 m/s: the last history speed ("now")."""
        return self.history_velocity[:, -1]

    @property
    def curvature_mean(self) -> np.ndarray:
        """(S,) float64 1/m: mean curvature over the input window."""
        return self.history_curvature.mean(axis=1)

    @property
    def curvature_last(self) -> np.ndarray:
        """(S,) float64 1/m: the last history curvature ("now")."""
        return self.history_curvature[:, -1]


def future_sample_times(end_us: np.ndarray, horizon_us: int, n: int) -> np.ndarray:
    """(S,) segment ends -> (S, n) int64 µs sample times end + (k+1) * horizon / n (rounded to the µs)."""
    offsets = np.round(np.arange(1, n + 1) * (horizon_us / n)).astype(np.int64)
    return np.asarray(end_us, dtype=np.int64)[:, None] + offsets[None, :]


def history_sample_times(end_us: np.ndarray, window_us: int, n: int) -> np.ndarray:
    """(S,) segment ends -> (S, n) int64 µs sample times end - window + (k+1) * window / n (the last is end)."""
    offsets = np.round(np.arange(1, n + 1) * (window_us / n)).astype(np.int64) - window_us
    return np.asarray(end_us, dtype=np.int64)[:, None] + offsets[None, :]


def segment_targets(
    table: EgomotionTable,
    end_us: np.ndarray,
    window_us: int,
    horizon_us: int,
    n: int,
    max_gap_us: int = MAX_GAP_US,
) -> SegmentTargets:
    """Next-horizon and input-window speed/curvature for every segment end, vectorised.

    end_us: (S,) int64 segment ends. A segment is invalid (NaN rows, reason given) when its sample span
    [first history time, last future time] is not inside the egomotion time range (no extrapolation), when a
    NaN or infinite sample touches the span, or when two consecutive samples in the span are more than
    `max_gap_us` apart.
    Returns `SegmentTargets` with (S, n) arrays.
    """
    end_us = np.asarray(end_us, dtype=np.int64).reshape(-1)
    fut_t = future_sample_times(end_us, horizon_us, n)
    hist_t = history_sample_times(end_us, window_us, n)
    span_lo = hist_t[:, 0] if n else end_us
    span_hi = fut_t[:, -1] if n else end_us

    reasons = span_reasons(table.timestamp_us, table.finite, _infinite(table), span_lo, span_hi, max_gap_us)
    valid = np.array([r is None for r in reasons], dtype=bool)

    both = np.concatenate([hist_t, fut_t], axis=1)
    speed = interpolate_speed(table, both)
    curv = interpolate_curvature(table, both)
    speed[~valid] = np.nan
    curv[~valid] = np.nan
    return SegmentTargets(
        velocity=speed[:, n:],
        curvature=curv[:, n:],
        history_velocity=speed[:, :n],
        history_curvature=curv[:, :n],
        valid=valid,
        reasons=reasons,
    )


def _infinite(table: EgomotionTable) -> np.ndarray:
    return np.isinf(table.velocity).any(axis=1) | np.isinf(table.curvature)


def span_reasons(
    ts: np.ndarray, finite: np.ndarray, infinite: np.ndarray, span_lo: np.ndarray, span_hi: np.ndarray, max_gap_us: int
) -> list[str | None]:
    """Why each sample span [lo, hi] (µs) cannot be interpolated, or None where it can.

    ts: (N,) µs sample times; finite / infinite: (N,) bool rows whose values are all finite / any infinite;
    span_lo, span_hi: (S,) µs. A span is bad when it is not inside [ts[0], ts[-1]] (no extrapolation), when a
    NaN or infinite row touches it, or when two consecutive samples in it are more than `max_gap_us` apart.
    """
    reasons: list[str | None] = [None] * len(span_lo)
    # Intervals between consecutive samples: bad if too long or touching a NaN row. Interval i is [ts[i], ts[i+1]].
    gaps = np.diff(ts)
    too_long = gaps > max_gap_us
    has_nan = ~(finite[:-1] & finite[1:])
    has_inf = infinite[:-1] | infinite[1:]
    # Intervals overlapping [lo, hi]: first = the one containing lo, last = the one containing hi.
    first = np.clip(np.searchsorted(ts, span_lo, side="right") - 1, 0, len(gaps) - 1)
    last = np.clip(np.searchsorted(ts, span_hi, side="left") - 1, 0, len(gaps) - 1)
    cum_long = np.concatenate([[0], np.cumsum(too_long)])
    cum_nan = np.concatenate([[0], np.cumsum(has_nan)])
    cum_inf = np.concatenate([[0], np.cumsum(has_inf)])
    n_long = cum_long[last + 1] - cum_long[first]
    n_nan = cum_nan[last + 1] - cum_nan[first]
    n_inf = cum_inf[last + 1] - cum_inf[first]
    uncovered = (span_lo < ts[0]) | (span_hi > ts[-1])

    for s in np.flatnonzero(uncovered | (n_long > 0) | (n_nan > 0)):
        lo, hi = int(span_lo[s]), int(span_hi[s])
        if uncovered[s]:
            reasons[s] = f"egomotion covers [{ts[0]}, {ts[-1]}] us, targets need [{lo}, {hi}] us (no extrapolation)"
        elif n_inf[s]:
            reasons[s] = f"egomotion has infinite values within [{lo}, {hi}] us"
        elif n_nan[s]:
            reasons[s] = f"egomotion has NaN values within [{lo}, {hi}] us"
        else:
            idx = first[s] + int(np.argmax(too_long[first[s] : last[s] + 1]))
            reasons[s] = (
                f"egomotion gap of {gaps[idx] / 1e6:.3f} s > {max_gap_us / 1e6:.1f} s at {ts[idx]} us "
                f"within [{lo}, {hi}] us"
            )
    return reasons


def clip_timing(frame_timestamps_us: np.ndarray) -> tuple[int, int, int]:
    """Frame timestamps (F,) int64 µs -> (clip_start_us, frame_dt_us, clip_end_us).

    clip_end_us = last timestamp + the median frame interval. Raises ValueError if fewer than 2 frames or the
    timestamps are not strictly increasing.
    """
    ts = np.asarray(frame_timestamps_us, dtype=np.int64)
    if len(ts) < 2:
        raise ValueError(f"{len(ts)} frame timestamp(s), need at least 2")
    d = np.diff(ts)
    if np.any(d <= 0):
        raise ValueError(f"frame timestamps are not strictly increasing (first at row {int(np.argmax(d <= 0)) + 1})")
    dt = int(round(float(np.median(d))))
    return int(ts[0]), dt, int(ts[-1]) + dt


def segment_windows(
    clip_start_us: int,
    clip_end_us: int,
    window_s: float,
    stride_s: float,
    horizon_s: float,
    tolerance_us: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Segment windows [start, end) on the clip timeline whose future horizon fits in the video.

    start_i = clip_start + round(i * stride_s * 1e6), end_i = start_i + round(window_s * 1e6), kept while
    end_i + horizon <= clip_end + tolerance_us (the stage passes half a frame interval, so frame-clock jitter of a
    few µs does not drop the last segment). Returns (start_us, end_us), each (S,) int64 (S may be 0).
    """
    window_us = int(round(window_s * 1e6))
    horizon_us = int(round(horizon_s * 1e6))
    stride_us = stride_s * 1e6
    last_start = clip_end_us + tolerance_us - horizon_us - window_us - clip_start_us
    if last_start < 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    count = int(np.floor(last_start / stride_us)) + 2
    offsets = np.round(np.arange(count) * stride_us).astype(np.int64)
    offsets = offsets[offsets <= last_start]
    start = clip_start_us + offsets
    return start, start + window_us


def frames_in_windows(frame_timestamps_us: np.ndarray, start_us: np.ndarray, end_us: np.ndarray) -> np.ndarray:
    """(S, 2) int64 [first, stop) frame-index ranges of the frames with start <= t < end, per window."""
    ts = np.asarray(frame_timestamps_us, dtype=np.int64)
    lo = np.searchsorted(ts, start_us, side="left")
    hi = np.searchsorted(ts, end_us, side="left")
    return np.stack([lo, hi], axis=1).astype(np.int64)


def nearest_frames(frame_timestamps_us: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    """(K,) int64 index of the frame nearest each time `t_us` (K,) µs (ties: the earlier frame)."""
    ts = np.asarray(frame_timestamps_us, dtype=np.int64)
    t = np.asarray(t_us, dtype=np.int64)
    after = np.clip(np.searchsorted(ts, t, side="left"), 0, len(ts) - 1)
    before = np.clip(after - 1, 0, len(ts) - 1)
    return np.where(np.abs(ts[before] - t) <= np.abs(ts[after] - t), before, after).astype(np.int64)


__all__ = [
    "MAX_GAP_US",
    "POSE_COLUMNS",
    "EgomotionError",
    "EgomotionTable",
    "SegmentTargets",
    "clean_egomotion",
    "clip_timing",
    "frames_in_windows",
    "future_sample_times",
    "history_sample_times",
    "interpolate_curvature",
    "interpolate_speed",
    "interpolate_velocity",
    "nearest_frames",
    "segment_targets",
    "segment_windows",
    "span_reasons",
]
