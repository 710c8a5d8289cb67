"""`benchmarks/gpu_smoke.sh`: bash syntax, and its CPU `--dry-run` path end to end with a tiny model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_smoke.sh"


def test_script_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    bad = subprocess.run(["bash", str(SCRIPT), "--no-such-flag"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown argument")


@pytest.mark.slow
def test_dry_run_trains_evaluates_merges_and_prints_the_summary(tmp_path):
    work = tmp_path / "smoke"
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--work-dir", str(work)], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "smoke: PASS" in out
    layout = next(line for line in out.splitlines() if line.startswith("tiny_qwen3_vl layout: "))
    assert "visual of" in layout and "timestamps <" in layout and "330 answer tokens carry loss" in layout
    row = next(line for line in out.splitlines() if line.startswith("| tiny_qwen3_vl"))
    assert " ok " in row and "2/2" in row
    run = work / "tiny_qwen3_vl"
    summary = json.loads((run / "lora" / "run_summary.json").read_text())
    assert summary["global_step"] == 4 and summary["peak_gpu_memory_gb"] is None
    for name in ("eval_b2", "eval_b1", "eval_merged"):
        metrics = json.loads((run / name / "metrics.json").read_text())
        assert metrics["n_samples"] == 2 and metrics["generation"]["do_sample"] is False
    assert json.loads((run / "merged" / "train_config.json").read_text())["max_steps"] == 4
