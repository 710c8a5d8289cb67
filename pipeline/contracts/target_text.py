"""The words of a row whose segments carry other targets or inputs than the default (one front camera, next
second's speed and curvature): the default prompt for `TargetSettings`, the trajectory history block and the
answers. With the default settings every function gives the default row's text (`messages.default_prompt`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.contracts.answer import DECIMALS
from pipeline.contracts.messages import default_prompt
from pipeline.contracts.targets import TargetSettings
from pipeline.contracts.trajectory_answer import format_trajectory, trajectory_prompt


def scene_sentence(settings: TargetSettings) -> str:
    """What the videos show: one camera or several (each named before its video), whole clips or a few frames."""
    cameras = len(settings.cameras)
    if cameras <= 1:
        text = "The video shows the last second seen by the car's front camera."
    else:
        text = f"The {cameras} videos show the same last second seen by the car's cameras, each named before it."
    if settings.frames_per_camera is not None:
        text += (
            f" Each video holds {settings.frames_per_camera} frames {settings.frame_spacing_s:g} s apart, the last "
            f"one at the end of the second."
        )
    return text


def motion_prompt(settings: TargetSettings) -> str:
    """The (speed, curvature) instruction for `settings.n_future` steps over `settings.horizon_s` seconds."""
    n, horizon = settings.n_future, settings.horizon_s
    if horizon == 1.0:
        return default_prompt(n).split(". ", 1)[1]
    step = 1.0 / settings.target_hz
    return (
        f"Predict the car's motion over the next {horizon:g} s at {n} evenly spaced times ({step:g} s apart; the "
        f"last one is {horizon:g} s after the end of the video). Answer with exactly {n} lines, one per time step "
        f"in order, each written as `velocity,curvature`: velocity is the speed in m/s and curvature is the path "
        f"curvature in 1/km (positive = turning left, negative = turning right, 0 = straight), both with "
        f"{DECIMALS} decimals, for example `12.34,-1.25`. Write nothing else."
    )


def targets_prompt(settings: TargetSettings) -> str:
    """The default user instruction: the scene, then the task of the answer (the trajectory where the segments
    carry one, else the motion); `default_prompt(30)` for the default settings."""
    task = trajectory_prompt(settings.n_future, settings.target_hz) if settings.trajectory else motion_prompt(settings)
    return f"{scene_sentence(settings)} {task}"


def trajectory_history_text(history_xyh: np.ndarray, history_hz: float) -> str:
    """The past path as a prompt block in the answer's format and frame.

    history_xyh: (H, 3) rows [x m, y m, heading rad], oldest first, the last at the end of the video.
    """
    rows = len(history_xyh)
    return (
        f"Measured path over the last {(rows - 1) / history_hz:g} s ({rows} lines {1 / history_hz:g} s apart, "
        f"oldest first, the last one is now; same format, units and frame as the answer):\n"
        f"{format_trajectory(np.asarray(history_xyh)[:, :2])}"
    )


def trajectory_format_description(n: int) -> dict[str, Any]:
    """The trajectory answer format as recorded in dataset_meta.json."""
    return {
        "lines": n,
        "line": "{x:.2f},{y:.2f}",
        "unit": "m",
        "frame": "ego frame at the end of the video: x forward, y left",
        "decimals": DECIMALS,
    }


def trajectory_answers(future_xyh: np.ndarray) -> list[str]:
    """The answer of every row: future_xyh (rows, N, 3) -> N `x,y` lines each (metres, ego frame)."""
    return [format_trajectory(points[:, :2]) for points in future_xyh]


__all__ = [
    "motion_prompt",
    "scene_sentence",
    "targets_prompt",
    "trajectory_answers",
    "trajectory_format_description",
    "trajectory_history_text",
]
