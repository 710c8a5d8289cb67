"""The launch scripts users call: a real 2-process torchrun + DeepSpeed run on CPU, the command lines they build,
and their early failures."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
from pathlib import Path

import pytest

from pipeline.standins.server_process import free_port

ROOT = Path(__file__).resolve().parents[2]
LORA = ROOT / "train_physical_ai_lora.sh"
FULL = ROOT / "train_physical_ai.sh"
# Variables the scripts read; cleared so the caller's environment cannot change what a test sees.
SCRIPT_VARS = (
    "MODEL",
    "DATASET",
    "OUTPUT_DIR",
    "DEEPSPEED_CONFIG",
    "NPROC_PER_NODE",
    "NNODES",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHRUN",
    "LOG_DIR",
    "CUDA_VISIBLE_DEVICES",
    "ACCELERATE_USE_CPU",
)


def script_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **values)
    return env


def run_script(script: Path, env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_lora_launcher_runs_two_processes(tiny_qwen3_vl, train_dataset_dir, tmp_path):
    """NPROC_PER_NODE=2 on CPU: torchrun starts 2 ranks, DeepSpeed ZeRO-2 joins them over gloo, the adapter saves."""
    import torch
    from safetensors.torch import load_file

    out, logs = tmp_path / "run", tmp_path / "logs"
    env = script_env(
        MODEL=str(tiny_qwen3_vl),
        DATASET=str(train_dataset_dir),
        OUTPUT_DIR=str(out),
        NPROC_PER_NODE="2",
        MASTER_PORT=str(free_port()),
        LOG_DIR=str(logs),
        CUDA_VISIBLE_DEVICES="",
    )
    proc = run_script(LORA, env, "--max-steps", "2", "--logging-steps", "1", "--report-to", "none", cwd=tmp_path)
    hint = ""
    if "train_batch_size is not equal" in proc.stderr:
        hint = (
            "accelerate counted 1 process while DeepSpeed joined 2: without CUDA, pipeline train must pass "
            "use_cpu=True to TrainingArguments (TRAINING.md, Troubleshooting)\n"
        )
    assert proc.returncode == 0, hint + proc.stderr[-4000:]

    # Both ranks ran the training loop: torchrun's per-rank logs each hold the two logged steps.
    rank_logs = {p.parent.name: p.read_text() for p in logs.rglob("stderr.log")}
    assert sorted(rank_logs) == ["0", "1"], sorted(p.relative_to(logs) for p in logs.rglob("*"))
    for rank, text in rank_logs.items():
        assert "step 1: loss" in text and "step 2: loss" in text, f"rank {rank}:\n{text[-2000:]}"

    # One data-parallel world of 2: DeepSpeed's own checkpoint record, and 2 steps x 1 row x 2 ranks = the 4 rows.
    states = torch.load(
        next((out / "checkpoint-2" / "global_step2").glob("*model_states.pt")), map_location="cpu", weights_only=False
    )
    assert states["dp_world_size"] == 2
    assert states["ds_config"]["zero_optimization"]["stage"] == 2
    assert states["ds_config"]["train_batch_size"] == 2
    # ZeRO-2 split the optimizer state between the two ranks.
    shards = sorted(p.name for p in (out / "checkpoint-2" / "global_step2").glob("*optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    trainer_state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert trainer_state["global_step"] == 2 and trainer_state["epoch"] == pytest.approx(1.0)

    summary = json.loads((out / "run_summary.json").read_text())
    assert len(summary["losses"]) == 2 and all(math.isfinite(x) for x in summary["losses"])
    assert json.loads((out / "train_config.json").read_text())["lora"]["enable"] is True
    adapter = load_file(out / "adapter_model.safetensors")
    assert any("lora_A" in k for k in adapter) and any("lora_B" in k for k in adapter)
    assert any(float(v.abs().max()) > 0 for k, v in adapter.items() if "lora_B" in k)


def echo_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """Environment in which `torchrun` is `echo`: the scripts print the command they would launch."""
    (tmp_path / "data").mkdir(exist_ok=True)
    return script_env(TORCHRUN="echo", DATASET=str(tmp_path / "data"), MODEL=str(tmp_path), **values)


def fake_nvidia_smi(tmp_path: Path, gpus: int) -> str:
    """A PATH whose `nvidia-smi -L` lists `gpus` GPUs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "nvidia-smi"
    lines = "".join(f"echo 'GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i})'\n" for i in range(gpus))
    tool.write_text(f"#!/usr/bin/env bash\n{lines}")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_lora_command_line(tmp_path):
    env = echo_env(
        tmp_path, NNODES="2", NODE_RANK="1", MASTER_ADDR="10.0.0.1", MASTER_PORT="29555", NPROC_PER_NODE="8"
    )
    proc = run_script(LORA, env, "--max-steps", "5", "--lora-r", "16")
    assert proc.returncode == 0, proc.stderr
    argv = proc.stdout.split()
    expected_launch = "--nnodes 2 --node-rank 1 --nproc-per-node 8 --master-addr 10.0.0.1 --master-port 29555"
    assert proc.stdout.startswith(expected_launch)
    train = argv[argv.index("-m") :]
    assert train[:3] == ["-m", "pipeline", "train"]
    assert train[train.index("--deepspeed") + 1] == str(ROOT / "configs" / "zero2.json")
    assert train[train.index("--model") + 1] == str(tmp_path)
    assert train[train.index("--output-dir") + 1] == "runs/physical_ai_lora"
    # LoRA is switched on after the full script's --no-lora-enable (the last flag wins), then the user's flags.
    assert train.index("--lora-enable") > train.index("--no-lora-enable")
    assert train[-4:] == ["--max-steps", "5", "--lora-r", "16"]


def test_full_command_line_uses_zero3_and_detected_gpus(tmp_path):
    env = echo_env(tmp_path, PATH=fake_nvidia_smi(tmp_path, 4), OUTPUT_DIR="out")
    proc = run_script(FULL, env, "--bf16")
    assert proc.returncode == 0, proc.stderr
    argv = proc.stdout.split()
    assert argv[argv.index("--nproc-per-node") + 1] == "4"
    assert argv[argv.index("--deepspeed") + 1] == str(ROOT / "configs" / "zero3.json")
    assert "--no-lora-enable" in argv and "--lora-enable" not in argv
    assert argv[-1] == "--bf16"
    assert "GPUs here: 4" in proc.stderr

    env["CUDA_VISIBLE_DEVICES"] = "1,3"
    argv = run_script(FULL, env).stdout.split()
    assert argv[argv.index("--nproc-per-node") + 1] == "2"


def test_without_gpu_one_cpu_process(tmp_path):
    env = echo_env(tmp_path, PATH=fake_nvidia_smi(tmp_path, 0))
    argv = run_script(FULL, env).stdout.split()
    assert argv[argv.index("--nproc-per-node") + 1] == "1"
    argv = run_script(FULL, dict(env, DEEPSPEED_CONFIG="none")).stdout.split()
    assert "--deepspeed" not in argv


@pytest.mark.parametrize("script", [LORA, FULL], ids=["lora", "full"])
def test_missing_dataset_fails_early(script, tmp_path):
    env = script_env(DATASET=str(tmp_path / "no_such_dataset"), MODEL=str(tmp_path), TORCHRUN="false")
    proc = run_script(script, env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: dataset directory not found: DATASET={tmp_path / 'no_such_dataset'} "
        "(build it with `pipeline build-dataset`)"
    ]


@pytest.mark.parametrize("model", ["./no_such_model", "/no/such/model", "models/a/b"])
def test_missing_local_model_fails_early(model, tmp_path):
    (tmp_path / "data").mkdir()
    env = script_env(DATASET=str(tmp_path / "data"), MODEL=model, TORCHRUN="false")
    proc = run_script(LORA, env, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: model directory not found: MODEL={model} (a local path must exist; a Hub id is org/name)"
    ]


def test_flag_overrides_are_checked_too(tmp_path):
    """A --model given on the command line is the one checked (and used), not the environment's."""
    env = echo_env(tmp_path)
    proc = run_script(FULL, env, "--model", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "model directory not found" in proc.stderr
    proc = run_script(FULL, env, "--model", "Qwen/Qwen2.5-VL-3B-Instruct")  # a Hub id is not a path
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "Qwen/Qwen2.5-VL-3B-Instruct"


def test_bad_nproc_and_missing_deepspeed_config(tmp_path):
    proc = run_script(FULL, echo_env(tmp_path, NPROC_PER_NODE="two"))
    assert proc.returncode == 2 and "NPROC_PER_NODE must be a positive integer" in proc.stderr
    proc = run_script(FULL, echo_env(tmp_path, NNODES="2"))
    assert proc.returncode == 2 and "MASTER_ADDR must be set to node 0's address when NNODES=2" in proc.stderr
    proc = run_script(FULL, echo_env(tmp_path, DEEPSPEED_CONFIG=str(tmp_path / "nope.json")))
    assert proc.returncode == 2 and "DeepSpeed config not found" in proc.stderr


@pytest.mark.parametrize(
    "name", ["lora_qwen3_vl_2b.yaml", "full_qwen2_5_vl_3b.yaml", "lora_qwen3_5_2b.yaml", "lora_internvl3_5_1b.yaml"]
)
def test_example_configs_are_valid_train_configs(name, monkeypatch):
    from pipeline.stages.train.config import TrainConfig

    monkeypatch.chdir(ROOT)  # their deepspeed paths are relative to the repository root
    config = TrainConfig.from_sources(ROOT / "configs" / name)
    assert config.lora.enable is name.startswith("lora")
    assert config.deepspeed == ("configs/zero2.json" if config.lora.enable else "configs/zero3.json")
    assert config.bf16 and config.video.fps >= 4 and config.video.min_frames >= 4  # >= 4 frames per 1-s clip


def test_config_file_values_are_not_overridden_by_launcher_defaults(tmp_path):
    """With --config, the launcher passes only what the user gave; the file's model/dataset/deepspeed stand."""
    env = script_env(TORCHRUN="echo", NPROC_PER_NODE="1")
    config = str(ROOT / "configs" / "lora_qwen3_vl_2b.yaml")
    proc = run_script(LORA, env, "--config", config, "--max-steps", "3")
    assert proc.returncode == 0, proc.stderr
    train = proc.stdout.split()[proc.stdout.split().index("-m") :]
    assert train == [
        "-m",
        "pipeline",
        "train",
        "--no-lora-enable",
        "--lora-enable",
        "--config",
        config,
        "--max-steps",
        "3",
    ]
    proc = run_script(LORA, dict(env, DATASET=str(tmp_path / "missing")), "--config", config)
    assert proc.returncode == 2 and "dataset directory not found" in proc.stderr
    proc = run_script(LORA, env, "--config", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "config file not found" in proc.stderr
