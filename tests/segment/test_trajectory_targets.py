"""`pipeline segment --targets both`: ego-frame trajectories against the synthetic clips' analytic poses, windows
whose history leaves the egomotion skipped and counted, and the settings recorded beside the segments."""

import json

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.stages.segment.config import SegmentConfig
from pipeline.standins.repo import clip_truth
from tests.cli_contract import assert_one_line_error, run_in_process
from tests.fixtures.segment_fixtures import make_segments

# 2 s of future at 10 Hz and 20 history rows at 10 Hz: the first window (ending at ~1 s) needs egomotion from
# ~-0.9 s, before the synthetic egomotion starts (~-0.5 s).
SETTINGS = {"target_kind": "both", "horizon_s": 2.0, "target_hz": 10.0, "history_steps": 20, "history_hz": 10.0}


@pytest.fixture(scope="module")
def trajectory_segments(synthetic_repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("trajectory") / "segments"
    make_segments(synthetic_repo.root, out, max_clips=2, size=(64, 36), **SETTINGS)
    return out


def truth_xyh(truth, end_us: int, t_us: np.ndarray) -> np.ndarray:
    """(K, 3) analytic [x, y, heading] at `t_us` in the ego frame at `end_us` (rotation by -yaw0 in the plane)."""
    s0, s = truth.at(np.array([end_us])), truth.at(t_us)
    c, n = np.cos(s0.yaw[0]), np.sin(s0.yaw[0])
    dx, dy = s.x - s0.x[0], s.y - s0.y[0]
    heading = np.angle(np.exp(1j * (s.yaw - s0.yaw[0])))
    return np.stack([c * dx + n * dy, -n * dx + c * dy, heading], axis=1)


def test_trajectories_match_the_analytic_poses(trajectory_segments, synthetic_repo):
    segments = json.loads((trajectory_segments / "metadata" / "segments.json").read_text())
    assert segments
    for rec in segments:
        truth = clip_truth(synthetic_repo, rec["clip_id"])
        end = rec["end_us"]
        future = truth_xyh(truth, end, end + np.arange(1, 21) * 100_000)
        history = truth_xyh(truth, end, end + np.arange(-19, 1) * 100_000)
        for got, want in ((np.array(rec["future_xyh"]), future), (np.array(rec["history_xyh"]), history)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got[:, :2], want[:, :2], atol=1e-3, rtol=0)
            np.testing.assert_allclose(got[:, 2], want[:, 2], atol=1e-4, rtol=0)
        assert len(rec["velocity"]) == 20  # motion targets follow --horizon and --target-hz too


def test_windows_without_history_are_skipped_and_counted(trajectory_segments):
    manifest = json.loads((trajectory_segments / "metadata" / "manifest.json").read_text())
    for clip in manifest["clips"]:
        # 1-s windows at 1-s stride, 2 s of horizon: 18 windows; the first lacks its history.
        assert clip["segments"] == 17
        assert [s["segment_index"] for s in clip["skipped_segments"]] == [0]
        assert "no extrapolation" in clip["skipped_segments"][0]["reason"]


def test_the_settings_are_recorded(trajectory_segments):
    config = json.loads((trajectory_segments / "metadata" / "segment_config.json").read_text())
    assert config["target_kind"] == "both"
    assert config["targets"] == {
        "targets": "both",
        **{k: v for k, v in SETTINGS.items() if k != "target_kind"},
        "cameras": ["camera_front_wide_120fov"],
        "frames_per_camera": None,
        "frame_spacing_s": 0.1,
    }


@pytest.mark.parametrize(
    ("override", "flag"),
    [
        ({"target_kind": "path"}, "--targets 'path'"),
        ({"horizon_s": 0.0}, "--horizon 0.0"),
        ({"history_steps": -1}, "--history -1"),
        ({"history_hz": 0.0}, "--history-hz 0.0"),
    ],
)
def test_bad_target_settings_name_their_flag(tmp_path, override, flag):
    with pytest.raises(PipelineError, match=f"^{flag}: "):
        SegmentConfig(input_dir=tmp_path, output_dir=tmp_path, **override)


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("--targets", "path"), ("--targets", "motion, trajectory, both")),
        (("--history-hz", "0"), ("--history-hz",)),
        (("--horizon", "-1"), ("--horizon",)),
    ],
)
def test_the_cli_names_a_bad_target_flag(capsys, tmp_path, args, names):
    result = run_in_process(capsys, "segment", "--input-dir", tmp_path, "--output-dir", tmp_path / "out", *args)
    assert_one_line_error(result, *names)
