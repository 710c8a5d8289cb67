"""A model server process that tests and benchmarks start (vLLM, `transformers serve`): wait until its
OpenAI-compatible `/v1/models` lists a model, and stop its whole process group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

LOG_TAIL_CHARS = 4000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(proc: subprocess.Popen, port: int, timeout_s: float = 600.0, log_path: Path | None = None) -> float:
    """Seconds until the server on 127.0.0.1:`port` lists its model.

    Raises:
        RuntimeError: the server exited, or did not serve within `timeout_s` (it is then stopped); the message ends
            with the tail of `log_path` when one is given.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}{_log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as response:
                if json.loads(response.read())["data"]:
                    return time.monotonic() - started
        except OSError:
            time.sleep(1.0)
    stop(proc)
    raise RuntimeError(f"the server did not serve within {timeout_s:g} s{_log_tail(log_path)}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server started in its own process group: SIGTERM, then SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _log_tail(log_path: Path | None) -> str:
    """':\\n' and the last `LOG_TAIL_CHARS` characters of the log, or '' without one."""
    if log_path is None or not log_path.exists():
        return ""
    return ":\n" + log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
