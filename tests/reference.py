"""Independent reference computations the tests check the package against (written here, not imported from it)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.contracts.answer import CURVATURE_SCALE, DECIMALS


def round_like_answer(velocity: np.ndarray, curvature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values as an answer line stores them: (n,) float32 m/s and (n,) float32 1/m, rounded to DECIMALS
    decimals (curvature in 1/km)."""
    v = np.array([float(f"{a:.{DECIMALS}f}") for a in np.asarray(velocity, dtype=np.float64).tolist()])
    k = np.array([float(f"{b * CURVATURE_SCALE:.{DECIMALS}f}") for b in np.asarray(curvature, np.float64).tolist()])
    return v.astype(np.float32), (k / CURVATURE_SCALE).astype(np.float32)


def ade_fde(pred_xy: np.ndarray, true_xy: np.ndarray) -> tuple[float, float]:
    """Average and final displacement error in metres over (N, n, 2) paths."""
    d = np.linalg.norm(np.asarray(pred_xy) - np.asarray(true_xy), axis=-1)
    return float(np.mean(d)), float(np.mean(d[..., -1]))


def body_frame_velocity(quat_xyzw: np.ndarray, velocity_anchor: np.ndarray) -> np.ndarray:
    """Rotate anchor-frame velocity into the vehicle (rig) frame: (N, 4) quaternions, (N, 3) m/s -> (N, 3) m/s.

    The pose quaternion maps rig-frame vectors to the anchor frame, so the inverse rotation is applied
    (x forward, y left, z up).
    """
    return Rotation.from_quat(quat_xyzw).inv().apply(velocity_anchor)


def planar_curvature(velocity: np.ndarray, acceleration: np.ndarray) -> np.ndarray:
    """Signed curvature of the ground-plane path from velocity and acceleration, (N, >=2) each -> (N,) 1/m.

    k = (vx * ay - vy * ax) / |v|^3: positive when the path bends counter-clockwise (a left turn with z up).
    """
    v = np.asarray(velocity, dtype=np.float64)
    a = np.asarray(acceleration, dtype=np.float64)
    speed = np.hypot(v[:, 0], v[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return (v[:, 0] * a[:, 1] - v[:, 1] * a[:, 0]) / speed**3
