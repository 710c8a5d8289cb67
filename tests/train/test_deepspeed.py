"""DeepSpeed for real on CPU: `pipeline train` with configs/zero2.json (LoRA) and configs/zero3.json (full).

Each run is a fresh `python -m pipeline train` process with the torch.distributed variables of a one-process
world (what torchrun sets), so DeepSpeed's process group (gloo on CPU) and global state never leak into the rest
of the suite. The DeepSpeed checkpoint each run writes records the config the engine really used.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.standins.server_process import free_port

ROOT = Path(__file__).resolve().parents[2]


def one_process_env() -> dict[str, str]:
    """This environment plus a one-process torch.distributed world on CPU, offline."""
    env = dict(os.environ)
    env.update(
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        LOCAL_WORLD_SIZE="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        CUDA_VISIBLE_DEVICES="",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def train(model: Path, dataset: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline", "train", "--model", str(model), "--dataset", str(dataset)]
    cmd += ["--output-dir", str(out), "--max-steps", "2", "--logging-steps", "1", "--report-to", "none", *flags]
    return subprocess.run(cmd, env=one_process_env(), cwd=out.parent, capture_output=True, text=True, timeout=600)


def deepspeed_model_states(out: Path) -> dict[str, Any]:
    """The DeepSpeed engine's own record of the final checkpoint (config as resolved, world size)."""
    import torch

    files = sorted((out / "checkpoint-2" / "global_step2").glob("*model_states.pt"))
    assert files, f"no DeepSpeed checkpoint in {out}/checkpoint-2: {sorted(p.name for p in out.rglob('*'))}"
    return torch.load(files[0], map_location="cpu", weights_only=False)


def check_losses(out: Path) -> dict[str, Any]:
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["global_step"] == 2
    assert len(summary["losses"]) == 2
    assert all(math.isfinite(x) and x > 0 for x in summary["losses"])
    return summary


@pytest.mark.slow
def test_zero2_lora_trains_and_saves_adapter(tiny_qwen3_vl, train_dataset_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "zero2"
    zero2 = str(ROOT / "configs" / "zero2.json")
    proc = train(tiny_qwen3_vl, train_dataset_dir, out, "--lora-enable", "--deepspeed", zero2)
    assert proc.returncode == 0, proc.stderr[-4000:]
    check_losses(out)

    states = deepspeed_model_states(out)
    zero = states["ds_config"]["zero_optimization"]
    assert zero["stage"] == 2
    assert isinstance(zero["reduce_bucket_size"], int)  # "auto" filled in by the Trainer (hidden_size ** 2)
    assert states["ds_config"]["train_micro_batch_size_per_gpu"] == 1
    assert states["dp_world_size"] == 1

    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = {k: v for k, v in adapter.items() if "lora_B" in k}
    assert lora_b, sorted(adapter)
    # LoRA B starts at zero; one optimizer step at lr 1e-4 (the warmup step has lr 0) moves it off zero.
    assert any(float(v.abs().max()) > 0 for v in lora_b.values())


@pytest.mark.slow
def test_zero3_full_saves_gathered_weights(tiny_qwen3_vl, train_dataset_dir, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "zero3"
    proc = train(
        tiny_qwen3_vl, train_dataset_dir, out, "--no-lora-enable", "--deepspeed", str(ROOT / "configs/zero3.json")
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    check_losses(out)
    zero = deepspeed_model_states(out)["ds_config"]["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"] is True

    # Under ZeRO-3 each rank holds only shards; the saved model must be the gathered weights, loadable as is.
    before = AutoModelForImageTextToText.from_pretrained(tiny_qwen3_vl).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(out).state_dict()
    assert set(after) == set(before)
    assert all(after[k].shape == before[k].shape for k in before)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # Default parts: the language model trains, the vision tower and its merger stay frozen.
    assert any(".layers." in k and "visual" not in k for k in changed)
    assert not any("visual" in k for k in changed)


@pytest.mark.slow
def test_zero2_full_step_of_internvl_changes_its_language_model(tiny_internvl, train_dataset_dir, tmp_path):
    """One full fine-tuning step of InternVL3.5 under ZeRO-2 (the families' test runs the other families' full step
    in-process): the language model's Linear weights change, the vision tower and projector do not."""
    import torch
    from safetensors.torch import load_file

    from pipeline.model.modeling import part_of

    out = tmp_path / "zero2_full"
    zero2 = str(ROOT / "configs" / "zero2.json")
    flags = ("--no-lora-enable", "--deepspeed", zero2, "--max-steps", "1", "--learning-rate", "1e-3")
    flags += ("--warmup-ratio", "0", "--max-train-samples", "1")
    proc = train(tiny_internvl, train_dataset_dir, out, *flags)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["global_step"] == 1 and math.isfinite(summary["losses"][0])
    before = load_file(tiny_internvl / "model.safetensors")
    after = load_file(out / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    llm_linear = {k for k in before if part_of(k) == "llm" and k.endswith("proj.weight")}
    assert llm_linear and llm_linear <= changed
    assert not {k for k in changed if part_of(k) != "llm"}
