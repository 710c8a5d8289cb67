"""Served evaluation of several-camera samples: one `video_url` part per camera in the conversation's order, one
frame plan for all, and (against a real `transformers serve`) the served prompt's token count equal to the
in-process one."""

from __future__ import annotations

import socket

import datasets
import pytest

from pipeline.contracts.messages import build_messages, default_prompt
from pipeline.core.errors import PipelineError
from pipeline.model.collator import SampleEncoder
from pipeline.model.families import family_of_processor
from pipeline.model.video_input import load_video
from pipeline.stages.evaluate.parity import check_parity
from pipeline.stages.evaluate.served_frames import FramePlan, decoding_fields, load_run_processor
from pipeline.stages.evaluate.serving_client import (
    PredictionLog,
    RequestPlan,
    ServerSettings,
    answer_max_tokens,
    ask_server,
)
from tests.evaluate.fake_chat_server import FakeChatServer
from tests.fixtures.model_fixtures import TEST_TARGET_HZ, write_test_clip

CAMERAS = ("camera_front_wide_120fov", "camera_cross_left_120fov")


@pytest.fixture(scope="module")
def camera_rows(tmp_path_factory):
    """Two samples of two cameras each (1-s 30 fps clips), answers keyed by the front camera's file name."""
    root = tmp_path_factory.mktemp("served_cameras")
    rows, answers = [], {}
    for i in range(2):
        videos = [str(write_test_clip(root / f"s{i}_{c}.mp4", seed=10 * i + k)) for k, c in enumerate(CAMERAS)]
        answer = f"{5 + i}.00,0.00"
        rows.append(
            {"id": f"s{i}", "messages": build_messages(videos, answer, "sys", default_prompt(1), cameras=CAMERAS)}
        )
        answers[f"s{i}_{CAMERAS[0]}.mp4"] = answer
    return datasets.Dataset.from_list(rows), answers


def plan_for(processor, engine: str, max_tokens: int = 32) -> RequestPlan:
    family = family_of_processor(processor)
    frames = FramePlan(processor.video_processor, SampleEncoder(processor).video_settings, family.frame_multiple)
    return RequestPlan("served-model", max_tokens, frames, decoding_fields(engine, processor, max_tokens))


def test_requests_carry_one_named_video_per_camera_in_order(camera_rows, tiny_qwen3_vl, tmp_path):
    rows, answers = camera_rows
    processor = load_run_processor(tiny_qwen3_vl)
    with FakeChatServer(answers) as server:
        settings = ServerSettings(url=server.url, engine="vllm", concurrency=1)
        result = ask_server(settings, rows, plan_for(processor, "vllm"), tmp_path / "predictions.jsonl")
        bodies = list(server.bodies)
    assert result.answers == {"s0": "5.00,0.00", "s1": "6.00,0.00"} and not result.failures
    for body in bodies:
        sample = "s0" if "s0_" in str(body) else "s1"
        user = body["messages"][1]["content"]
        assert [part["type"] for part in user] == ["text", "video_url", "text", "video_url", "text"]
        assert [user[0]["text"], user[2]["text"]] == ["front wide camera:", "\ncross left camera:"]
        names = [part["video_url"]["url"].rsplit("/", 1)[-1] for part in user if part["type"] == "video_url"]
        assert names == [f"{sample}_{c}.mp4" for c in CAMERAS]
        trained = len(
            load_video(user[1]["video_url"]["url"].removeprefix("file://"), SampleEncoder(processor).video_settings)[
                1
            ]["frames_indices"]
        )
        assert body["mm_processor_kwargs"]["num_frames"] == trained == 4


def test_a_sample_whose_cameras_sample_different_frame_counts_is_refused(tiny_qwen3_vl, tmp_path):
    processor = load_run_processor(tiny_qwen3_vl)
    one = write_test_clip(tmp_path / "one.mp4", seed=0)
    two = write_test_clip(tmp_path / "two.mp4", seed=1, frames=60)
    with pytest.raises(PipelineError, match=r"different frame counts \(\[4, 8\]\)"):
        plan_for(processor, "vllm").frames.request_fields("vllm", [one, two])


@pytest.mark.slow
def test_served_prompt_of_two_cameras_has_the_in_process_token_count(camera_rows, tiny_qwen3_vl, tmp_path):
    from pipeline.standins.server_process import stop, wait_ready
    from pipeline.standins.transformers_serve import launch

    rows, _ = camera_rows
    processor = load_run_processor(tiny_qwen3_vl)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        server = launch(tiny_qwen3_vl, port, log_file=log_file)
    try:
        try:
            wait_ready(server, port, timeout_s=600)
        except RuntimeError as err:
            raise AssertionError(f"{err}: {log_path.read_text()[-3000:]}") from None
        settings = ServerSettings(
            url=f"http://127.0.0.1:{port}/v1", served_model=str(tiny_qwen3_vl), engine="transformers"
        )
        plan = plan_for(processor, "transformers", answer_max_tokens(TEST_TARGET_HZ))
        plan = RequestPlan(str(tiny_qwen3_vl), plan.max_tokens, plan.frames, plan.decoding)
        parity = check_parity(settings, rows, processor, plan, PredictionLog(tmp_path / "predictions.jsonl"))
    finally:
        stop(server)
    assert parity["checked"], parity
    encoder = SampleEncoder(processor)
    for entry, row in zip(parity["samples"], rows, strict=True):
        in_process = encoder.encode(row["messages"], for_generation=True)["input_ids"].shape[1]
        assert entry["served_tokens"] == entry["training_tokens"] == in_process
