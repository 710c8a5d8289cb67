"""The README's first command, CI-sized: `pipeline demo --quick` runs every stage and writes a finite report, with
the default Qwen3-VL and with `--family internvl`."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest
from PIL import Image


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3_vl", "internvl"])
def test_quick_demo_runs_every_stage(tmp_path, family):
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--quick", "--keep", "--workdir", str(workdir), "--family", family],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train_mean" in result.stdout and "report:" in result.stdout

    # Every stage left its output behind (--keep).
    assert (workdir / "demo_source" / "download_manifest.json").is_file()
    manifest = json.loads((workdir / "demo_segments" / "metadata" / "manifest.json").read_text())
    assert manifest["clips"] and all(c["status"] == "done" for c in manifest["clips"])
    segments = json.loads((workdir / "demo_segments" / "metadata" / "segments.json").read_text())
    assert all((workdir / "demo_segments" / s["video"]).is_file() for s in segments)
    assert (workdir / "demo_dataset" / "dataset_meta.json").is_file()
    assert (workdir / "demo_model" / "train_config.json").is_file()
    model_config = json.loads((workdir / "demo_model" / "config.json").read_text())
    assert model_config["model_type"] == family
    text = model_config["text_config"]
    # 32: the smallest head size vLLM's CPU attention takes, so the quick demo's run can be served with vLLM
    assert text["head_dim"] == text["hidden_size"] // text["num_attention_heads"] == 32

    report = workdir / "demo_report"
    metrics = json.loads((report / "metrics.json").read_text())
    model_scores = metrics["scores"]["all"]["model"]
    for key in ("velocity_mae", "curvature_mae", "ade", "fde"):
        assert math.isfinite(model_scores[key]), key
    for baseline in ("zero_motion", "train_mean", "constant", "linear_extrapolation"):
        assert math.isfinite(metrics["scores"]["all"][baseline]["velocity_mae"])
    assert (report / "report.md").read_text().count("|") > 10
    # report.html's gallery plays copies of the held-out clips, kept beside the page
    sources = re.findall(r'<source src="([^"]+)" type="video/mp4">', (report / "report.html").read_text())
    assert sources and all((report / src).is_file() and src.startswith("clips/") for src in sources)
    for png in ("error_vs_horizon.png", "scatter_velocity.png", "example_trajectories.png"):
        with Image.open(report / png) as image:
            assert image.size[0] > 100 and len(image.convert("L").getcolors(maxcolors=65536) or []) > 10


def _stop_after_start(monkeypatch, made: list) -> None:
    """The demo's first stage makes its folder, then the run stops (the rest of the chain is the slow test's)."""
    from pipeline.core.errors import PipelineError

    def write_repo(config, progress):
        config.output_dir.mkdir(parents=True)
        made.append(config.output_dir)
        raise PipelineError("stopped by the test after the first stage")

    monkeypatch.setattr("pipeline.standins.repo.write_repo", write_repo)


def test_demo_never_deletes_the_real_stages_outputs(tmp_path, capsys, monkeypatch):
    from tests.cli_contract import assert_one_line_error, run_in_process

    users = ["physical_ai_data", "qwen_video_segments", "qwen_video_dataset", "model", "eval_report", "tiny_model"]
    for name in users:
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.txt").write_text("the user's work")
    made: list = []
    _stop_after_start(monkeypatch, made)
    for _ in range(2):  # the second run removes what the first made, and only that
        result = run_in_process(capsys, "demo", "--quick", "--workdir", tmp_path)
        assert_one_line_error(result, "stopped by the test")
    assert made == [tmp_path / "demo_hub_repo"] * 2
    assert all((tmp_path / name / "mine.txt").read_text() == "the user's work" for name in users)


def test_demo_refuses_a_folder_of_its_own_names_it_did_not_make(tmp_path, capsys):
    from tests.cli_contract import assert_one_line_error, run_in_process

    (tmp_path / "demo_model").mkdir()
    (tmp_path / "demo_model" / "mine.txt").write_text("the user's work")
    result = run_in_process(capsys, "demo", "--quick", "--workdir", tmp_path)
    assert_one_line_error(result, str(tmp_path / "demo_model"), "not made by `pipeline demo`")
    assert (tmp_path / "demo_model" / "mine.txt").is_file()


@pytest.mark.slow
def test_quick_alpamayo_demo_runs_every_stage_with_four_cameras_and_trajectories(tmp_path):
    import av
    import numpy as np

    from pipeline.contracts.dataset_reader import load_split
    from pipeline.contracts.trajectory_answer import parse_trajectory

    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--quick", "--profile", "alpamayo", "--keep"]
        + ["--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trajectories, all samples" in result.stdout and "constant_velocity" in result.stdout

    # Four cameras, each a 4-frame clip; 64 future rows at 10 Hz and 16 history rows per segment.
    segments = json.loads((workdir / "demo_segments" / "metadata" / "segments.json").read_text())
    assert segments
    for record in segments[:3]:
        assert [c.split("_")[1] for c in record["cameras"]] == ["front", "cross", "cross", "front"]
        for video in record["videos"]:
            with av.open(str(workdir / "demo_segments" / video)) as container:
                assert sum(1 for _ in container.decode(video=0)) == 4
        assert np.asarray(record["future_xyh"]).shape == (64, 3)
        assert np.asarray(record["history_xyh"]).shape == (16, 3)
        assert np.allclose(record["history_xyh"][-1], 0.0, atol=1e-9)  # the last history row is the window's end

    # Each row: one named video per camera, and the answer is the path within the 2-decimal rounding.
    rows = load_split(workdir / "demo_dataset", "train")
    row = rows[0]
    user = next(m for m in row["messages"] if m["role"] == "user")
    assert [part["type"] for part in user["content"]].count("video") == 4
    assert "cross left camera:" in "".join(part.get("text") or "" for part in user["content"])
    answer = next(m for m in row["messages"] if m["role"] == "assistant")["content"][0]["text"]
    parsed = parse_trajectory(answer, 64)
    assert parsed.n_points == 64
    assert np.abs(parsed.xy - np.asarray(row["future_xyh"])[:, :2]).max() <= 0.005 + 1e-4

    metrics = json.loads((workdir / "demo_report" / "metrics.json").read_text())["trajectory"]
    assert metrics["n_points"] == 64 and metrics["target_hz"] == 10
    scores = metrics["scores"]["all"]
    # A 4-step model may give no point at all (its ADE is then null); its share of points given is always known.
    assert 0.0 <= scores["model"]["coverage"] <= 1.0
    for baseline in ("constant_velocity", "ctrv", "history_ridge"):
        assert math.isfinite(scores[baseline]["ade_m"]["6.4s"]), baseline
    with Image.open(workdir / "demo_report" / "trajectories_top_down.png") as image:
        assert image.size[0] > 100
