"""vLLM against `transformers serve`, both started with `pipeline serve-model`'s command, on the same run and the
same requests at the same concurrency, measured in one run: served samples/s, server start-up (s) and server peak
memory (RSS of the server's process tree, MiB), and their ratios.

Run: `PIPELINE_VLLM_PYTHON=.venv-vllm/bin/python uv run python benchmarks/serve_bench.py --run-dir RUN
--dataset DATASET [--samples 8] [--concurrency 2]`

RUN is a training output directory whose attention heads vLLM's CPU attention takes (32 wide or more, e.g. the
demo's tiny model or `pipeline make-tiny-model --heads 2` trained briefly); DATASET its stage-3 dataset.
`PIPELINE_VLLM_PYTHON` (or `--vllm-python`) is the vLLM environment's Python (`.ci/vllm_env.sh` makes one). Each
server is started, timed until `/v1/models` lists the run, asked for `--samples` test samples by
`pipeline evaluate --server` (parity pre-flight included), then stopped; the RSS of its process tree is sampled
every 0.2 s from start to stop. One run, one machine: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.standins.server_process import free_port, stop, wait_ready


@dataclass
class Served:
    """What one engine measured."""

    startup_s: float  # Popen until /v1/models lists the model, s
    samples_per_s: float  # evaluate's asking loop, samples/s
    peak_rss_mib: float  # the server's process tree, MiB


def _tree_rss_mib(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


def measure(engine: str, args: argparse.Namespace, workdir: Path) -> Served:
    """Start `engine` on the run, time start-up, evaluate `args.samples` samples, stop it; its figures."""
    from pipeline.stages.evaluate.serving_client import ServerSettings
    from pipeline.stages.evaluate.stage import EvaluateConfig, run
    from pipeline.stages.serve.config import ServeModelConfig
    from pipeline.stages.serve.stage import engine_command

    port = free_port()
    config = ServeModelConfig(args.run_dir, engine=engine, port=port, engine_python=args.vllm_python, cpu=True)
    command = engine_command(config) + (["--device", "cpu"] if engine == "transformers" else [])
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CACHE_ROOT": str(workdir / "vllm_cache")}
    env |= {"TORCHINDUCTOR_CACHE_DIR": str(workdir / "inductor"), "HF_HUB_OFFLINE": "1"}
    if engine == "vllm":
        env.pop("VIRTUAL_ENV", None)
    peak = [0.0]
    done = threading.Event()
    started = time.monotonic()
    with open(workdir / f"{engine}.log", "wb") as log_file:
        server = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss_mib(server.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wait_ready(server, port, timeout_s=1800.0, log_path=workdir / f"{engine}.log")
        startup_s = time.monotonic() - started
        settings = ServerSettings(url=f"http://127.0.0.1:{port}/v1", engine=engine, concurrency=args.concurrency)
        evaluate = EvaluateConfig(
            args.dataset, workdir / engine, server=settings, run_dir=args.run_dir, max_samples=args.samples
        )
        rate = run(evaluate).info["server"]["samples_per_s"]
    finally:
        stop(server)
        done.set()
        sampler.join()
    return Served(startup_s, rate, peak[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--vllm-python", default=os.environ.get("PIPELINE_VLLM_PYTHON"))
    args = parser.parse_args()
    if not args.vllm_python:
        parser.error("--vllm-python or PIPELINE_VLLM_PYTHON: the vLLM environment's Python (.ci/vllm_env.sh)")
    args.run_dir = args.run_dir.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        figures = {engine: measure(engine, args, Path(tmp)) for engine in ("vllm", "transformers")}
    print(f"{args.samples} samples at concurrency {args.concurrency}, run {args.run_dir.name}")
    print(f"{'engine':>12}  {'samples/s':>9}  {'start-up s':>10}  {'peak RSS MiB':>12}")
    for engine, served in figures.items():
        print(f"{engine:>12}  {served.samples_per_s:>9.2f}  {served.startup_s:>10.1f}  {served.peak_rss_mib:>12.0f}")
    vllm, hf = figures["vllm"], figures["transformers"]
    print(
        f"vllm / transformers: samples/s {vllm.samples_per_s / hf.samples_per_s:.2f}x, "
        f"start-up {vllm.startup_s / hf.startup_s:.2f}x, peak RSS {vllm.peak_rss_mib / hf.peak_rss_mib:.2f}x"
    )


if __name__ == "__main__":
    main()
