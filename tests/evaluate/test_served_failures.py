"""A served run that cannot be trusted ends with exit 2 and one line: a prompt that differs from training's (the
parity pre-flight), a client error on every request, too many failed requests; and what passes is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from pipeline.cli.app import main
from pipeline.contracts.answer import format_answer
from pipeline.contracts.run_config import VideoSettings
from pipeline.model.collator import SampleEncoder
from tests.evaluate.fake_chat_server import FakeChatServer
from tests.fixtures.model_fixtures import write_test_dataset

N_TEST = 6


@pytest.fixture(scope="module")
def served_dataset(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    dataset_dir = write_test_dataset(tmp_path_factory.mktemp("served"), n_train=4, n_test=N_TEST)
    test = datasets.load_from_disk(str(dataset_dir / "test"))
    answers = {Path(row["video"]).name: format_answer(row["velocity"], row["curvature"]) for row in test}
    return dataset_dir, answers


@pytest.fixture(scope="module")
def training_prompt_tokens(served_dataset, tiny_qwen3_vl) -> int:
    """The length of the prompt training builds for a test sample (all have the same shape here)."""
    from transformers import AutoProcessor

    from pipeline.contracts.dataset_reader import load_split

    row = load_split(served_dataset[0], "test")[0]
    encoder = SampleEncoder(AutoProcessor.from_pretrained(tiny_qwen3_vl), VideoSettings())
    return int(encoder.encode(row["messages"], for_generation=True)["input_ids"].shape[1])


def error_line(captured: str) -> str:
    """The one `error:` line on stderr (progress lines may come before it)."""
    errors = [line for line in captured.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and captured.rstrip().endswith(errors[0]), captured
    return errors[0]


def evaluate(server: FakeChatServer, dataset_dir: Path, out: Path, run_dir: Path, *extra: str) -> int:
    args = ["evaluate", "--server", server.url, "--dataset", str(dataset_dir), "--output-dir", str(out)]
    try:
        main([*args, "--run-dir", str(run_dir), "--max-retries", "0", *extra])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_a_server_prompt_that_differs_from_training_stops_the_run_in_one_line(
    served_dataset, tiny_qwen3_vl, training_prompt_tokens, tmp_path, capsys
):
    dataset_dir, answers = served_dataset
    with FakeChatServer(answers) as server:
        server.prompt_tokens = lambda body: training_prompt_tokens + 2  # the outer vision wrapper kept
        code = evaluate(server, dataset_dir, tmp_path / "out", tiny_qwen3_vl)
        asked = len(server.bodies)
        err = error_line(capsys.readouterr().err)
        assert code == 2
        assert f"has {training_prompt_tokens + 2} tokens, training's {training_prompt_tokens}" in err
        assert "<|vision_start|>/<|vision_end|>" in err and "serving_template.jinja" in err
        assert asked == 1  # stopped at the first sample
        server.reset()
        code = evaluate(server, dataset_dir, tmp_path / "unchecked", tiny_qwen3_vl, "--no-parity-check")
        assert code == 0 and len(server.bodies) == N_TEST
    metrics = json.loads((tmp_path / "unchecked" / "metrics.json").read_text())
    assert metrics["server"]["parity"] == {"checked": False}


def test_a_matching_prompt_passes_the_pre_flight_and_every_sample_is_asked_once(
    served_dataset, tiny_qwen3_vl, training_prompt_tokens, tmp_path
):
    dataset_dir, answers = served_dataset
    with FakeChatServer(answers) as server:
        server.prompt_tokens = lambda body: training_prompt_tokens
        assert evaluate(server, dataset_dir, tmp_path / "out", tiny_qwen3_vl) == 0
        assert sorted(server.counts.values()) == [1] * N_TEST  # the pre-flight's answers are kept
    parity = json.loads((tmp_path / "out" / "metrics.json").read_text())["server"]["parity"]
    assert parity["checked"] is True and len(parity["samples"]) == 2
    assert parity["samples"][0]["served_tokens"] == parity["samples"][0]["training_tokens"] == training_prompt_tokens


def test_a_server_without_usage_is_noted_and_the_run_goes_on(served_dataset, tiny_qwen3_vl, tmp_path):
    dataset_dir, answers = served_dataset
    with FakeChatServer(answers) as server:
        assert evaluate(server, dataset_dir, tmp_path / "out", tiny_qwen3_vl) == 0
    parity = json.loads((tmp_path / "out" / "metrics.json").read_text())["server"]["parity"]
    assert parity == {"checked": False, "reason": "the server reports no usage"}


@pytest.mark.parametrize("parity", ["--parity-check", "--no-parity-check"])
def test_http_400_on_every_request_is_exit_2_naming_the_servers_message(
    parity, served_dataset, tiny_qwen3_vl, tmp_path, capsys
):
    dataset_dir, answers = served_dataset
    with FakeChatServer(answers) as server:
        server.status = 400
        server.error_message = "Failed to apply Qwen3VLProcessor on data={'video': ...}\nsecond line"
        code = evaluate(server, dataset_dir, tmp_path / "out", tiny_qwen3_vl, parity, "--concurrency", "1")
        asked = len(server.bodies)
    err = error_line(capsys.readouterr().err)
    assert code == 2
    assert "HTTP 400" in err and "Failed to apply Qwen3VLProcessor" in err
    assert asked == 1  # a client error is not retried nor asked again for other samples


def test_more_failed_requests_than_the_set_share_is_exit_2_and_the_report_says_so(
    served_dataset, tiny_qwen3_vl, tmp_path, capsys
):
    dataset_dir, answers = served_dataset
    broken = sorted(answers)[-2:]  # 2 of 6 fail with HTTP 500 after the retries
    out = tmp_path / "out"
    with FakeChatServer(answers) as server:
        server.fail_always = set(broken)
        code = evaluate(server, dataset_dir, out, tiny_qwen3_vl, "--max-failed-share", "0.25")
    err = error_line(capsys.readouterr().err)
    assert code == 2
    assert "2 of 6 server requests failed after retries (more than --max-failed-share 0.25)" in err
    assert "Served run failed:** 2 of 6 server requests failed" in (out / "report.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["server"]["failures"] == 2
    with FakeChatServer(answers) as server:  # within the share: the run passes
        server.fail_always = set(broken[:1])
        assert evaluate(server, dataset_dir, tmp_path / "within", tiny_qwen3_vl, "--max-failed-share", "0.25") == 0
