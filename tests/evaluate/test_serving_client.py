"""`pipeline evaluate --server` against a counting fake OpenAI-compatible server on 127.0.0.1: requests, retries,
resuming after a kill, a server that is down, and the API key never written anywhere."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest

from pipeline.cli.app import main
from pipeline.contracts.answer import format_answer
from pipeline.core.errors import PipelineError
from pipeline.stages.evaluate.scoring import MODEL_NAME
from pipeline.stages.evaluate.serving_client import PREDICTIONS_FILE, ServerSettings, answer_max_tokens
from pipeline.stages.evaluate.stage import EvaluateConfig, run
from tests.evaluate.fake_chat_server import FakeChatServer
from tests.fixtures.model_fixtures import TEST_TARGET_HZ, write_test_dataset

N_TEST = 12
REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-test-QUOKKA-7f3a9c1e5b"


@pytest.fixture(scope="module")
def served_dataset(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A dataset with 12 one-clip test samples and the true answer of each, keyed by video file name."""
    dataset_dir = write_test_dataset(tmp_path_factory.mktemp("served"), n_train=4, n_test=N_TEST)
    test = datasets.load_from_disk(str(dataset_dir / "test"))
    answers = {Path(row["video"]).name: format_answer(row["velocity"], row["curvature"]) for row in test}
    return dataset_dir, answers


def config_for(server_url: str, dataset_dir: Path, out: Path, run_dir: Path, **server) -> EvaluateConfig:
    settings = ServerSettings(url=server_url, **{"concurrency": 4, **server})
    return EvaluateConfig(dataset=dataset_dir, output_dir=out, server=settings, run_dir=run_dir)


def predicted_ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (out / PREDICTIONS_FILE).read_text().splitlines()]


def test_server_answers_are_scored_and_ask_for_the_training_frames(served_dataset, tiny_qwen3_vl, tmp_path):
    dataset_dir, answers = served_dataset
    with FakeChatServer(answers) as server:
        result = run(config_for(server.url, dataset_dir, tmp_path / "out", tiny_qwen3_vl))
        bodies = list(server.bodies)
    assert result.n_samples == N_TEST and result.n_failures == 0
    assert result.scores["all"][MODEL_NAME].velocity_mae <= 0.005 + 1e-9  # the true answers, rounded
    assert sorted(predicted_ids(tmp_path / "out")) == sorted(result.ids)
    assert len(bodies) == N_TEST
    body = bodies[0]
    assert body["model"] == "served-model" and body["temperature"] == 0
    assert body["max_tokens"] == answer_max_tokens(TEST_TARGET_HZ)
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]  # the dataset's messages, its answer left out
    video = next(c for c in body["messages"][1]["content"] if c["type"] == "video_url")["video_url"]["url"]
    assert video.startswith("file:///") and Path(video.removeprefix("file://")).is_file()
    # training samples 4 frames of a 30-frame second (video fps 4); Qwen3-VL budgets pixels per clip
    kwargs = body["mm_processor_kwargs"]
    assert kwargs["num_frames"] == 4 and kwargs["do_sample_frames"] is True and kwargs["fps"] is None
    assert kwargs["size"] == {"shortest_edge": 32 * 32 * 4 * 4, "longest_edge": 448 * 448 * 4}
    assert body["media_io_kwargs"] == {"video": {"num_frames": -1, "video_backend": "opencv"}}
    assert "chat_template_kwargs" not in body  # Qwen3-VL's template has no variables to set
    assert body["repetition_penalty"] == 1.0  # never a checkpoint's penalty under greedy decoding
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    server = metrics["server"]
    assert server["asked"] + server["asked_in_parity_check"] == N_TEST and server["failures"] == 0
    assert server["asked_in_parity_check"] == 1 and server["parity"]["reason"] == "the server reports no usage"


def test_transformers_engine_sends_plain_paths_and_chat_template_kwargs(served_dataset, tiny_qwen3_vl, tmp_path):
    dataset_dir, answers = served_dataset
    with FakeChatServer(answers) as server:
        config = config_for(server.url, dataset_dir, tmp_path / "out", tiny_qwen3_vl, engine="transformers")
        config = replace(config, max_samples=3)
        result = run(config)
        body = server.bodies[0]
    assert result.n_samples == 3  # whole clips: one segment each here
    video = next(c for c in body["messages"][1]["content"] if c["type"] == "video_url")["video_url"]["url"]
    assert video.startswith("/") and Path(video).is_file()
    assert body["chat_template_kwargs"]["num_frames"] == 4
    assert "mm_processor_kwargs" not in body and "media_io_kwargs" not in body
    generation = json.loads(body["generation_config"])  # replaces the checkpoint's config in transformers serve
    assert generation["do_sample"] is False and generation["repetition_penalty"] == 1.0
    assert generation["max_new_tokens"] == body["max_tokens"] and generation["eos_token_id"]


def test_a_500_is_retried_and_a_lasting_one_is_a_recorded_failure_asked_again_on_resume(
    served_dataset, tiny_qwen3_vl, tmp_path
):
    dataset_dir, answers = served_dataset
    names = sorted(answers)
    flaky, broken = names[0], names[1]
    out = tmp_path / "out"
    with FakeChatServer(answers) as server:
        server.fail_first = {flaky}
        server.fail_always = {broken}
        result = run(config_for(server.url, dataset_dir, out, tiny_qwen3_vl, max_retries=1))
        assert server.counts[flaky] == 2  # one 500, then the retry's answer
        assert server.counts[broken] == 2  # the request and its one retry, then a recorded failure
        assert all(server.counts[name] == 1 for name in names[2:])
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["server"]["failures"] == 1
        assert "500" in next(iter(metrics["server"]["failure_examples"].values()))
        assert result.n_failures == 1  # scored as a parse failure (train mean)
        assert len(predicted_ids(out)) == N_TEST - 1
        server.fail_always.clear()
        server.reset()
        again = run(config_for(server.url, dataset_dir, out, tiny_qwen3_vl))
        assert dict(server.counts) == {broken: 1}  # only the missing id is asked
        other = config_for(server.url, dataset_dir, out, tiny_qwen3_vl, engine="transformers")
        with pytest.raises(PipelineError, match=r"answers of another run \(differs in: decoding, engine\)"):
            run(other)  # answers asked another way are never mixed in
    assert again.n_failures == 0 and len(predicted_ids(out)) == N_TEST


def cli_args(server_url: str, dataset_dir: Path, out: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "evaluate",
        "--server",
        server_url,
        "--dataset",
        str(dataset_dir),
        "--output-dir",
        str(out),
        "--run-dir",
        str(run_dir),
        *extra,
    ]


def test_a_killed_evaluation_resumes_asking_only_for_the_missing_ids_and_never_writes_the_api_key(
    served_dataset, tiny_qwen3_vl, tmp_path, monkeypatch, caplog, capsys
):
    """The CLI is killed mid-way (a subprocess), then re-run in-process: only the missing ids are asked. A
    recognisable API key goes to the server on every request and appears nowhere in what both runs wrote."""
    import logging

    dataset_dir, answers = served_dataset
    out = tmp_path / "out"
    monkeypatch.setenv("PIPELINE_TEST_KEY", SECRET)
    env = {**os.environ, "OPENAI_LOG": "debug"}  # the openai client's own debug logging on, too
    with FakeChatServer(answers, delay_s=0.5) as server:
        args = cli_args(server.url, dataset_dir, out, tiny_qwen3_vl, "--concurrency", "2")
        args += ["--api-key-env", "PIPELINE_TEST_KEY"]
        with open(tmp_path / "stdout", "wb") as stdout, open(tmp_path / "stderr", "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", *args], cwd=REPO_ROOT, env=env, stdout=stdout, stderr=stderr
            )
        deadline = time.monotonic() + 300
        path = out / PREDICTIONS_FILE
        while not (path.is_file() and path.read_text().count("\n") >= 4):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr").read_text()[-2000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        answered = set(predicted_ids(out))
        assert 4 <= len(answered) < N_TEST
        auth = set(server.auth)
        server.reset()
        server.delay_s = 0.0
        caplog.set_level(logging.DEBUG)
        result = run(config_for(server.url, dataset_dir, out, tiny_qwen3_vl, api_key_env="PIPELINE_TEST_KEY"))
        asked = {name for name, count in server.counts.items() if count}
        auth |= set(server.auth)
    answered_videos = {f"{sample_id}.mp4" for sample_id in answered}
    assert len(asked) == sum(server.counts.values()) == N_TEST - len(answered)
    assert not asked & answered_videos
    assert result.n_failures == 0 and sorted(predicted_ids(out)) == sorted(result.ids)
    print(f"killed after {len(answered)} answers; the re-run asked for the other {len(asked)}")

    assert auth == {f"Bearer {SECRET}"}  # the server got the key with every request
    captured = capsys.readouterr()
    written = [(tmp_path / "stdout").read_bytes(), (tmp_path / "stderr").read_bytes()]
    written += [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    written += [caplog.text.encode(), captured.out.encode(), captured.err.encode()]
    assert len(written) > 8 and b"PIPELINE_TEST_KEY" in b"".join(written)  # the variable's name is recorded
    assert not any(SECRET[8:].encode() in blob for blob in written)  # neither the key nor a part of it
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["server"]["api_key_env"] == "PIPELINE_TEST_KEY"
    assert np.isfinite(metrics["scores"]["all"][MODEL_NAME]["velocity_mae"])


def test_a_server_that_is_down_is_one_line_and_exit_2_before_any_work(served_dataset, tiny_qwen3_vl, tmp_path, capsys):
    import socket

    dataset_dir, _ = served_dataset
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(cli_args(f"http://127.0.0.1:{port}/v1", dataset_dir, out, tiny_qwen3_vl))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --server http://127.0.0.1:{port}/v1: cannot reach the server") and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("fixture", ["tiny_qwen3_vl", "tiny_internvl"])
def test_the_server_is_held_to_the_frames_its_family_trains_on(fixture, request, tmp_path):
    """5 frames per second of a 30-frame clip: Qwen trains on 6 (frames merge in pairs) and the server is asked for
    them; InternVL trains on 5, which its processor's own sampler would pick elsewhere, so the server is refused."""
    from pipeline.contracts.run_config import VideoSettings
    from pipeline.model.families import family_of_processor
    from pipeline.model.video_input import load_video
    from pipeline.stages.evaluate.served_frames import FramePlan, load_run_processor
    from tests.fixtures.model_fixtures import write_test_clip

    processor = load_run_processor(request.getfixturevalue(fixture))
    family = family_of_processor(processor)
    settings = VideoSettings(fps=5.0, min_frames=1)
    clip = write_test_clip(tmp_path / "clip.mp4", seed=0, frames=30, fps=30)
    trained = load_video(clip, settings, family.frame_multiple)[1]["frames_indices"]
    plan = FramePlan(processor.video_processor, settings, family.frame_multiple)
    if family.name == "internvl":
        assert len(trained) == 5
        with pytest.raises(PipelineError, match=re.escape(f"where training sampled {list(trained)}")):
            plan.request_fields("vllm", clip)
    else:
        assert plan.request_fields("vllm", clip)["mm_processor_kwargs"]["num_frames"] == len(trained) == 6


@pytest.mark.parametrize("engine", ["vllm", "transformers", "plain"])
def test_every_qwen3_5_request_carries_its_template_switch(engine, served_dataset, tiny_qwen3_5, tmp_path):
    """Training renders Qwen3.5 with enable_thinking=False; a server must too, or a 4B+ model starts thinking."""
    dataset_dir, answers = served_dataset
    with FakeChatServer(answers) as server:
        config = config_for(server.url, dataset_dir, tmp_path / "out", tiny_qwen3_5, engine=engine)
        config = replace(config, max_samples=2)
        run(config)
        bodies = list(server.bodies)
    assert bodies and all(body["chat_template_kwargs"]["enable_thinking"] is False for body in bodies)
    if engine == "transformers":  # the frame settings travel in the same field
        assert bodies[0]["chat_template_kwargs"]["num_frames"] == 4
