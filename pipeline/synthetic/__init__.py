"""Synthetic PhysicalAI-AV-shaped repositories: analytic trajectories, rendered road videos, frame-index codes."""

from pipeline.synthetic.frame_code import decode_frame_index, stamp_frame_index
from pipeline.synthetic.repo import RepoSummary, SynthClip, SynthConfig, clip_truth, write_repo
from pipeline.synthetic.trajectory import SCENARIO_KINDS, Trajectory, TrajectoryState, scenario_for

__all__ = [
    "SCENARIO_KINDS",
    "RepoSummary",
    "SynthClip",
    "SynthConfig",
    "Trajectory",
    "TrajectoryState",
    "clip_truth",
    "decode_frame_index",
    "scenario_for",
    "stamp_frame_index",
    "write_repo",
]
