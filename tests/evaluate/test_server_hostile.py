"""A careless or hostile server: malformed answers are failures of their sample, a bad model list is one line, the
API key and a URL's password are never sent as Basic auth nor written, and an interrupted run says so."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.stages.evaluate.serving_client import PREDICTIONS_FILE
from pipeline.stages.evaluate.stage import run
from tests.cli_contract import assert_one_line_error, run_in_process
from tests.evaluate.fake_chat_server import FakeChatServer
from tests.evaluate.test_serving_client import N_TEST, REPO_ROOT, SECRET, cli_args, config_for, predicted_ids
from tests.fixtures.model_fixtures import write_test_dataset

JSON = "application/json"
HUGE = '{"choices": [{"message": {"content": "' + "9" * (2 << 20) + '"}}]}'
# Each malformed response, and what the recorded failure of its sample says.
MALFORMED = {
    "error with status 200": (
        (200, JSON, '{"error": {"message": "model overloaded"}}'),
        "an error: 'model overloaded'",
    ),
    "empty choices": ((200, JSON, '{"choices": []}'), "a chat completion without choices"),
    "null message": ((200, JSON, '{"choices": [{"index": 0, "message": null}]}'), "a choice has no message"),
    "list content": (
        (200, JSON, '{"choices": [{"message": {"content": [{"type": "text", "text": "1,2"}]}}]}'),
        "the message's content is a JSON list, not text",
    ),
    "html": ((200, "text/html", "<html><body>502 Bad Gateway</body></html>"), "not JSON (text/html: '<html>"),
    "not JSON": ((200, JSON, "{'choices': oops"), "not JSON (application/json: \"{'choices': oops\")"),
    "nested": ((200, JSON, "[" * 100_000), "not JSON (application/json: '[[[["),
    "not an object": ((200, JSON, "[1, 2]"), "a JSON list instead of a chat completion"),
    "over the cap": ((200, JSON, HUGE), "a response over 1024 KiB (the server ignored max_tokens?)"),
}


@pytest.fixture(scope="module")
def served_dataset(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """As `test_serving_client.served_dataset`: 12 one-clip test samples and the true answer of each by video name."""
    import datasets

    from pipeline.contracts.answer import format_answer

    dataset_dir = write_test_dataset(tmp_path_factory.mktemp("hostile"), n_train=4, n_test=N_TEST)
    test = datasets.load_from_disk(str(dataset_dir / "test"))
    return dataset_dir, {Path(row["video"]).name: format_answer(row["velocity"], row["curvature"]) for row in test}


def test_malformed_answers_are_failures_of_their_sample_and_the_run_goes_on(served_dataset, tiny_qwen3_vl, tmp_path):
    dataset_dir, answers = served_dataset
    names = sorted(answers)
    broken = dict(zip(names, MALFORMED.values(), strict=False))
    surrogate = names[len(MALFORMED)]  # a lone surrogate escape after a good answer: read, as U+FFFD
    out = tmp_path / "out"
    with FakeChatServer(answers) as server:
        server.raw = {name: response for name, (response, _) in broken.items()}
        body = json.dumps({"choices": [{"message": {"content": answers[surrogate] + "\ud800"}}]})
        server.raw[surrogate] = (200, JSON, body)
        # Most samples fail on purpose: the failed-share exit (test_served_failures.py) is not what is tested here.
        settings = {"max_retries": 0, "max_failed_share": 1.0}
        result = run(config_for(server.url, dataset_dir, out, tiny_qwen3_vl, **settings))
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    failures = metrics["server"]["failure_examples"]
    assert metrics["server"]["failures"] == len(MALFORMED) == result.n_failures
    for name, (_, reason) in broken.items():
        assert reason in failures[name.removesuffix(".mp4")], (name, failures)
    assert len(predicted_ids(out)) == N_TEST - len(MALFORMED)
    stored = {json.loads(line)["id"]: json.loads(line)["text"] for line in (out / PREDICTIONS_FILE).open()}
    assert stored[surrogate.removesuffix(".mp4")] == answers[surrogate] + "\ufffd"
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


@pytest.mark.parametrize(
    "body",
    ["<html>Bad Gateway</html>", '{"error": {"message": "down"}}', '{"data": [{"name": "served-model"}]}'],
    ids=["html", "error", "no ids"],
)
def test_a_bad_model_list_is_one_line_and_exit_2(served_dataset, tiny_qwen3_vl, tmp_path, capsys, body):
    dataset_dir, answers = served_dataset
    out = tmp_path / "out"
    with FakeChatServer(answers) as server:
        server.models_body = body
        url = server.url
        result = run_in_process(capsys, *cli_args(url, dataset_dir, out, tiny_qwen3_vl))
    assert_one_line_error(result, f"--server {url}: GET /models answered")
    assert not out.exists()


def test_a_url_password_and_an_echoed_key_are_neither_sent_nor_written(
    served_dataset, tiny_qwen3_vl, tmp_path, capsys, caplog, monkeypatch
):
    """`http://user:PASSWORD@host/v1`: the user info is dropped with a warning (no Basic auth, the key goes as the
    Bearer token), and a server error that quotes the key is recorded with the key redacted. Every file the run
    wrote, its stdout, stderr and log hold neither the password nor the key."""
    dataset_dir, answers = served_dataset
    password = "pw-WOMBAT-42d1"
    out = tmp_path / "out"
    monkeypatch.setenv("PIPELINE_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    echoing = sorted(answers)[0]
    with FakeChatServer(answers) as server:
        server.echo_key = {echoing}
        clean = server.url
        url = clean.replace("http://", f"http://alice:{password}@")
        extra = ("--api-key-env", "PIPELINE_TEST_KEY", "--max-retries", "0")
        result = run_in_process(capsys, *cli_args(url, dataset_dir, out, tiny_qwen3_vl, *extra))
        auth = set(server.auth)
    assert result.code == 0, result.err
    assert auth == {f"Bearer {SECRET}"}  # never Basic auth from the URL
    assert "dropped the user name and password in the URL" in caplog.text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["server"]["url"] == clean and metrics["settings"]["server"]["url"] == clean
    assert metrics["server"]["failure_examples"][echoing.removesuffix(".mp4")] == (
        "Error code: 500 - invalid credentials: Bearer [redacted]"
    )
    written = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    written += [result.out.encode(), result.err.encode(), caplog.text.encode()]
    assert len(written) > 8 and b"PIPELINE_TEST_KEY" in b"".join(written)
    for secret in (SECRET, password):
        assert not any(secret[4:].encode() in blob for blob in written), secret


def test_an_interrupted_served_run_says_so_and_exits_130(served_dataset, tiny_qwen3_vl, tmp_path):
    dataset_dir, answers = served_dataset
    out = tmp_path / "out"
    with FakeChatServer(answers, delay_s=0.5) as server:
        args = cli_args(server.url, dataset_dir, out, tiny_qwen3_vl, "--concurrency", "2")
        # SIGINT back to its default in the child: a parent run in the background by a shell ignores it.
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *args],
            cwd=REPO_ROOT,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 300
        while not ((out / PREDICTIONS_FILE).is_file() and (out / PREDICTIONS_FILE).read_text().count("\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted: finished work was kept; a re-run resumes", err
    assert "Traceback" not in err
