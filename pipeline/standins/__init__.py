"""Offline stand-ins for what the tests, the demo and the benchmarks cannot reach: synthetic PhysicalAI-AV-shaped
repositories (analytic trajectories, rendered road videos, frame-index codes), a local Hub-protocol server
(`hub_server`), tiny random-init Qwen-VL models (`tiny_model`, chat templates in `templates/`) and the sizes of the
hermetic runs (`profiles`). No stage imports this package; only the demo and the `synth`/`tiny-model` commands do.
"""

from pipeline.standins.frame_code import decode_frame_index, stamp_frame_index
from pipeline.standins.repo import clip_truth, write_repo
from pipeline.standins.synth_config import SynthClip, SynthConfig, SynthResult
from pipeline.standins.trajectory import SCENARIO_KINDS, Trajectory, TrajectoryState, scenario_for

__all__ = [
    "SCENARIO_KINDS",
    "SynthResult",
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
