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
    assert (workdir / "physical_ai_data" / "download_manifest.json").is_file()
    manifest = json.loads((workdir / "qwen_video_segments" / "metadata" / "manifest.json").read_text())
    assert manifest["clips"] and all(c["status"] == "done" for c in manifest["clips"])
    segments = json.loads((workdir / "qwen_video_segments" / "metadata" / "segments.json").read_text())
    assert all((workdir / "qwen_video_segments" / s["video"]).is_file() for s in segments)
    assert (workdir / "qwen_video_dataset" / "dataset_meta.json").is_file()
    assert (workdir / "model" / "train_config.json").is_file()
    model_type = json.loads((workdir / "model" / "config.json").read_text())["model_type"]
    assert model_type == family

    report = workdir / "eval_report"
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
