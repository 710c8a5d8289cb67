"""Samples/s of `pipeline evaluate --server` against a real `transformers serve` on CPU, at two concurrencies.

Run: `uv run python benchmarks/serve_bench.py --run-dir RUN --dataset DATASET [--samples 16] [--concurrency 1 8]`

RUN is a training output directory (weights, processor, train_config.json), e.g. a tiny model trained by the
demo (`pipeline demo --keep`) or by the test suite; DATASET its stage-3 dataset. The script starts
`python -m pipeline.standins.transformers_serve RUN` on 127.0.0.1, waits until it serves, then scores about `--samples`
test samples (whole clips) once per concurrency, each into a fresh output directory (nothing is resumed). It
prints samples/s of the asking loop, the ratio between the concurrencies, and the time 580 k samples (the full
test split) would take at each measured rate and at `--server-rate` samples/s (a stated GPU server throughput).
One run, one machine: the ratio is the figure to read, not the absolute rate.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
from pathlib import Path

TEST_SPLIT_SAMPLES = 580_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _hours(samples: int, per_s: float) -> str:
    return f"{samples / per_s / 3600:,.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--server-rate", type=float, default=20.0, help="stated server throughput, samples/s")
    args = parser.parse_args()

    from pipeline.stages.evaluate.serving_client import ServerSettings
    from pipeline.stages.evaluate.stage import EvaluateConfig, run
    from pipeline.standins.transformers_serve import launch, stop, wait_ready

    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = launch(args.run_dir, port)
    rates: dict[int, float] = {}
    try:
        wait_ready(server, port)
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in args.concurrency:
                settings = ServerSettings(
                    url=url, served_model=str(args.run_dir), engine="transformers", concurrency=concurrency
                )
                config = EvaluateConfig(
                    dataset=args.dataset,
                    output_dir=Path(tmp) / f"c{concurrency}",
                    server=settings,
                    run_dir=args.run_dir,
                    max_samples=args.samples,
                )
                rates[concurrency] = run(config).info["server"]["samples_per_s"]  # the asking loop only
    finally:
        stop(server)
    print(f"{'concurrency':>11}  {'samples/s':>9}  {'580 k samples':>13}")
    for concurrency, rate in rates.items():
        print(f"{concurrency:>11}  {rate:>9.2f}  {_hours(TEST_SPLIT_SAMPLES, rate):>13}")
    first, last = args.concurrency[0], args.concurrency[-1]
    print(f"concurrency {last} / {first}: {rates[last] / rates[first]:.2f}x")
    stated = _hours(TEST_SPLIT_SAMPLES, args.server_rate)
    print(f"at a stated {args.server_rate:g} samples/s: 580 k samples in {stated}")


if __name__ == "__main__":
    main()
