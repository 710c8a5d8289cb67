"""A real `transformers serve` on 127.0.0.1 (through `pipeline.standins.transformers_serve`) serving a tiny Qwen3-VL
trained here: `pipeline evaluate --server` answers agree with in-process greedy answers.

The server decodes the mp4s itself (torchcodec, FFmpeg's shared libraries) and samples the frames the request
asks for, so agreement shows that the served model sees the training frames, pixels and token layout.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pipeline.model.inference import GenerationSettings
from pipeline.stages.evaluate.serving_client import ServerSettings, answer_max_tokens
from pipeline.stages.evaluate.stage import EvaluateConfig, run
from pipeline.standins.server_process import free_port, stop, wait_ready
from pipeline.standins.transformers_serve import launch
from tests.fixtures.model_fixtures import TEST_TARGET_HZ, write_test_dataset

N_TEST = 8  # held-out samples: each is one CPU generation in-process and one through the server
TRAIN_STEPS = 24
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run(tiny_qwen3_vl, tmp_path_factory) -> tuple[Path, Path]:
    """(dataset dir, training output dir) of a tiny Qwen3-VL fully fine-tuned for a few steps with `pipeline train`."""
    from pipeline.stages.train.config import TrainConfig
    from pipeline.stages.train.trainer import run as train

    root = tmp_path_factory.mktemp("served_run")
    dataset_dir = write_test_dataset(root, n_train=4, n_test=N_TEST)
    out = root / "run"
    config = TrainConfig.from_sources(
        overrides=dict(
            model=str(tiny_qwen3_vl),
            dataset=str(dataset_dir),
            output_dir=str(out),
            lora_enable=False,
            learning_rate=3e-3,
            lr_scheduler_type="constant",
            warmup_ratio=0.0,
            max_steps=TRAIN_STEPS,
            logging_steps=1000,
            save_steps=1000,
            report_to="none",
            seed=0,
        )
    )
    train(config)
    assert (out / "train_config.json").is_file()
    return dataset_dir, out


@pytest.mark.slow
def test_served_answers_agree_with_in_process_greedy_answers(trained_run, tmp_path):
    dataset_dir, run_dir = trained_run
    max_tokens = answer_max_tokens(TEST_TARGET_HZ)
    started = time.monotonic()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        server = launch(run_dir, port, log_file=log_file)
    try:
        # the server starts (imports, model load) while the in-process answers are generated
        local = run(
            EvaluateConfig(
                dataset=dataset_dir,
                output_dir=tmp_path / "in_process",
                model=str(run_dir),
                batch_size=1,
                generation=GenerationSettings(max_new_tokens=max_tokens),
                save_predictions=True,
                device="cpu",
            )
        )
        try:
            wait_ready(server, port, timeout_s=600)
        except RuntimeError as err:
            raise AssertionError(f"{err}: {log_path.read_text()[-3000:]}") from None
        served = run(
            EvaluateConfig(
                dataset=dataset_dir,
                output_dir=tmp_path / "served",
                server=ServerSettings(url=url, served_model=str(run_dir), engine="transformers", concurrency=2),
                run_dir=run_dir,
            )
        )
    finally:
        stop(server)
    assert served.ids == local.ids and len(local.ids) == N_TEST
    same = sum(a == b for a, b in zip(local.texts, served.texts, strict=True))
    agreement = same / N_TEST
    metrics = json.loads((tmp_path / "served" / "metrics.json").read_text())
    print(
        f"served vs in-process greedy answers: {same}/{N_TEST} identical ({100 * agreement:.0f} %); "
        f"{metrics['server']['samples_per_s']} samples/s at concurrency 2; "
        f"parse failures {served.n_failures}; test took {time.monotonic() - started:.0f} s"
    )
    assert metrics["server"]["failures"] == 0
    assert all(text for text in served.texts)
    assert agreement >= 0.95, list(zip(local.texts, served.texts, strict=True))
