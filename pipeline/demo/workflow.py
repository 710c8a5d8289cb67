"""The hermetic end-to-end demo: synthesize a PhysicalAI-AV-shaped repository, serve it over the Hub protocol on
127.0.0.1, then download → segment → build the dataset → train a tiny Qwen-VL → evaluate, each through the same
code a real run takes. Offline and CPU-only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.core.atomic import write_json
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.demo.config import DemoConfig
from pipeline.demo.profiles import (
    tiny_dataset_config,
    tiny_evaluate_config,
    tiny_model_config,
    tiny_segment_config,
    tiny_synth_config,
    tiny_train_config,
)
from pipeline.demo.workdir import REPORT_DIR, DemoWorkdir

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """What the demo produced."""

    report_dir: Path  # evaluation report (report.md, metrics.json, plots)
    headline: str  # model vs baselines table
    seconds: dict[str, float]  # wall time per stage
    evaluation: Any  # pipeline.stages.evaluate.scoring.EvaluationResult


@contextmanager
def _hub_environment(endpoint: str) -> Iterator[None]:
    """Point huggingface_hub at the local server for the block (plain HTTP, no telemetry)."""
    saved = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HUB_DISABLE_XET", "HF_HUB_OFFLINE")}
    os.environ.update(HF_ENDPOINT=endpoint, HF_HUB_DISABLE_XET="1")
    os.environ.pop("HF_HUB_OFFLINE", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("demo: %s", name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 2)


def run(config: DemoConfig, progress: ProgressSink | None = None) -> DemoResult:
    """Run every stage on a fresh synthetic repository under `config.workdir`."""
    from pipeline.stages.dataset import stage as dataset
    from pipeline.stages.download import stage as download
    from pipeline.stages.download.config import DownloadConfig
    from pipeline.stages.evaluate import stage as evaluate
    from pipeline.stages.evaluate.report import headline_table
    from pipeline.stages.segment import stage as segment
    from pipeline.stages.segment.config import EGOMOTION_FEATURE
    from pipeline.stages.train import trainer
    from pipeline.standins.hub_server import serve_repo
    from pipeline.standins.repo import write_repo
    from pipeline.standins.tiny_model import make_tiny_model

    progress = progress or NullProgress()
    p = config.profile
    timer = _Timer()
    workdir = DemoWorkdir(config.workdir)
    workdir.claim()

    with timer.stage("synthesize"):
        repo = write_repo(tiny_synth_config(p, config.path("demo_hub_repo"), config.seed), progress)
    with timer.stage("serve + download"), serve_repo(repo.root) as server, _hub_environment(server.endpoint):
        download.run(
            DownloadConfig(
                output_dir=config.path("demo_source"),
                all_chunks=True,
                endpoint=server.endpoint,
                yes=True,
                **({"features": (EGOMOTION_FEATURE, *p.cameras)} if p.cameras else {}),
            ),
            progress,
        )
    with timer.stage("segment"):
        segment.run(tiny_segment_config(p, config.path("demo_source"), config.path("demo_segments")), progress)
    with timer.stage("build dataset"):
        dataset.run(
            tiny_dataset_config(
                p, config.path("demo_segments"), config.path("demo_dataset"), config.seed, config.history
            ),
            progress,
        )
    with timer.stage("build tiny model"):
        make_tiny_model(config.path("demo_tiny_model"), tiny_model_config(p, config.family, config.seed))
    with timer.stage("train"):
        trainer.run(
            tiny_train_config(
                p, config.path("demo_tiny_model"), config.path("demo_dataset"), config.path("demo_model"), config.seed
            ),
            progress,
        )
    with timer.stage("evaluate"):
        eval_config = tiny_evaluate_config(
            p, config.path("demo_dataset"), config.path("demo_model"), config.path(REPORT_DIR)
        )
        result = evaluate.run(eval_config, progress)
    write_json(
        config.path(REPORT_DIR) / "demo.json",
        {"profile": asdict(p), "seed": config.seed, "family": config.family, "seconds": timer.seconds},
    )
    if not config.keep:
        workdir.remove_stage_outputs()
    return DemoResult(
        report_dir=config.path(REPORT_DIR),
        headline=headline_table(result),
        seconds=timer.seconds,
        evaluation=result,
    )
