"""The CLI's console: no third-party noise at the default level (shown with -v), log lines never glued to a bar,
and periodic plain progress lines when stderr is not a terminal."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios

import pytest
from rich.console import Console

from pipeline.cli import console as console_mod
from pipeline.core.progress import BYTES, LogProgress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # any control character but tab and newline


def run_in_pty(args: list[str], timeout: float = 240) -> tuple[int, str]:
    """Run `python -m pipeline ARGS` with stdin/stdout/stderr on a 160x45 pseudo-terminal; (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 160, 0, 0))
    env = os.environ | {"COLUMNS": "160", "LINES": "45", "TERM": "xterm-256color"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"no output for {timeout} s: {b''.join(chunks)[-2000:]!r}")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    return code, b"".join(chunks).decode("utf-8", "replace")


def screen_lines(output: str) -> list[str]:
    """What a terminal shows line by line: ANSI sequences removed, each carriage-return rewrite a line of its own."""
    return [line for line in re.split(r"[\r\n]+", ANSI.sub("", output)) if line.strip()]


@pytest.mark.parametrize("verbose", [False, True])
def test_download_on_a_terminal_has_no_http_lines_unless_verbose(hub_server, use_hub, tmp_path, verbose):
    use_hub(hub_server)
    args = ["-v"] if verbose else []
    code, output = run_in_pty([*args, "download", "--chunk", "0", "--output-dir", str(tmp_path / "data")])
    assert code == 0, output[-3000:]
    lines = screen_lines(output)
    http = [line for line in lines if "HTTP Request:" in line]
    if verbose:
        assert len(http) >= 4 and "/resolve/" in output and '"HTTP/1.1 200 OK"' in output, lines  # index + chunk files
    else:
        assert http == [], http
    # the byte bar was drawn on the terminal, and no log line was ever printed into it
    bars = [line for line in lines if "━" in line]
    assert any(re.match(r"downloading 2 files ━+ [\d.]+/[\d.]+ [kM]B ", line) for line in bars), lines
    assert not [line for line in bars if "INFO" in line or "WARNING" in line or "HTTP" in line], bars
    assert any("INFO" in line and "dataset nvidia/PhysicalAI-Autonomous-Vehicles" in line for line in lines)


def test_stage_off_a_terminal_logs_periodic_progress_without_control_characters(synthetic_repo, tmp_path):
    stderr_path = tmp_path / "stderr.log"
    with open(stderr_path, "w") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "--progress-interval", "0", "segment", "--max-clips", "3"]
            + ["--input-dir", str(synthetic_repo.root), "--output-dir", str(tmp_path / "segments")],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=600,
        )
    log_text = stderr_path.read_text()
    assert result.returncode == 0, log_text[-3000:]
    assert not CONTROL.search(log_text), repr(CONTROL.search(log_text))
    assert "━" not in log_text  # no bar at all
    progress = re.findall(r"INFO pipeline\.core\.progress: segment clips: (\d)/3 \(\d+ %\)(.*)$", log_text, flags=re.M)
    assert [done for done, _ in progress] == ["0", "1", "2", "3"], log_text
    assert progress[0][1] == ", elapsed 0:00:00"
    for _, rest in progress[1:]:
        assert re.fullmatch(r", [\d.e+-]+/s, elapsed \d:\d\d:\d\d, ETA \d:\d\d:\d\d", rest), rest
    assert re.search(r"segment clips: done, 3 in \d:\d\d:\d\d, [\d.e+-]+/s$", log_text, flags=re.M), log_text
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ", log_text)  # timestamped plain lines


def test_log_progress_at_most_one_line_per_interval_with_rate_and_eta(caplog):
    now = [100.0]
    sink = LogProgress(interval_s=30, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        sink.start("building rows", 1000)
        for _ in range(100):  # 10 rows a second for 100 s
            now[0] += 1
            sink.advance(10)
        sink.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "building rows: 0/1,000 (0 %), elapsed 0:00:00"
    # lines at 30, 60 and 90 s, never two within 30 s
    assert lines[1:4] == [
        f"building rows: {n:,}/1,000 ({n // 10} %), 10/s, elapsed 0:0{t // 60}:{t % 60:02d}, ETA 0:0{(100 - t) // 60}:"
        f"{(100 - t) % 60:02d}"
        for n, t in ((300, 30), (600, 60), (900, 90))
    ]
    assert lines[4:] == ["building rows: done, 1,000 in 0:01:40, 10/s"]


def test_log_progress_counts_bytes_and_unknown_totals(caplog):
    now = [0.0]
    sink = LogProgress(interval_s=0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        sink.start("downloading 2 files", 4_000_000, unit=BYTES)
        now[0] += 2
        sink.advance(1_000_000)
        sink.start("reading", None)
        now[0] += 4
        sink.advance(2)
        sink.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1] == "downloading 2 files: 1.0 MB/4.0 MB (25 %), 500.0 kB/s, elapsed 0:00:02, ETA 0:00:06"
    assert lines[2] == "downloading 2 files: done, 1.0 MB in 0:00:02, 500.0 kB/s"  # a new start finishes the old
    assert lines[4:] == ["reading: 2, 0.5/s, elapsed 0:00:04", "reading: done, 2 in 0:00:04, 0.5/s"]


def test_log_progress_lines_take_a_new_description(caplog):
    now = [0.0]
    sink = LogProgress(interval_s=0, clock=lambda: now[0])
    sink.describe("ignored: no loop running")
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        sink.start("asking the server", 4)
        now[0] += 1
        sink.describe("asking the server (1 failed, 1.00 samples/s)")
        sink.advance(1)
        sink.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1] == "asking the server (1 failed, 1.00 samples/s): 1/4 (25 %), 1/s, elapsed 0:00:01, ETA 0:00:03"


def test_progress_is_a_bar_only_on_a_terminal():
    assert type(console_mod.for_console(Console(file=io.StringIO(), force_terminal=True))).__name__ == "RichProgress"
    assert isinstance(console_mod.for_console(Console(file=io.StringIO()), interval_s=5), LogProgress)


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_notices_and_own_handlers(verbose):
    recorded = Console(file=io.StringIO(), force_terminal=True, width=200, record=True)
    library = logging.getLogger("DeepSpeed")  # DeepSpeed's logger: its own stdout handler, no propagation
    library.propagate = False
    library.addHandler(stray := logging.StreamHandler(io.StringIO()))
    restore = console_mod.setup(verbose=verbose, console=recorded)
    try:
        assert stray not in library.handlers and library.propagate
        library.warning("Setting accelerator to CPU.")
        library.error("a DeepSpeed error")
        logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/x")
        logging.getLogger("huggingface_hub.file_download").warning("a Hub warning")
        logging.getLogger("pipeline.stages.download.stage").info("our own line")
        logging.getLogger("pipeline.stages.download.stage").debug("our debug line")
    finally:
        restore()
    text = recorded.export_text()
    assert "a DeepSpeed error" in text and "a Hub warning" in text and "our own line" in text
    for shown_only_when_verbose in ("Setting accelerator to CPU.", "HTTP Request:", "our debug line"):
        assert (shown_only_when_verbose in text) == verbose, text


def test_a_library_configured_after_setup_cannot_add_its_console_handler():
    console_mod.adopt_library_logger("pipeline_test_library")
    late = logging.getLogger("pipeline_test_library")  # as the library would, on its import
    late.addHandler(logging.StreamHandler())
    late.addHandler(file_handler := logging.NullHandler())
    late.propagate = False
    assert late.handlers == [file_handler] and late.propagate
