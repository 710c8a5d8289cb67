"""The CLI's contract for an expected failure, as one reusable check: exit code 2, no traceback, and exactly one
`error:` line (the last line of stderr) that names the file or flag at fault.

Log lines (`INFO ...`, `WARNING ...`) and progress bars may precede the error line on stderr; they are the run's
normal output, not part of the error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class CliResult:
    """What one `pipeline` command did."""

    code: int
    out: str
    err: str


def run_pipeline(*args: object, env: Mapping[str, str] | None = None, timeout: float = 300) -> CliResult:
    """`python -m pipeline ARGS` in a subprocess (the real console entry point), with `env` added to os.environ."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_in_process(capsys: pytest.CaptureFixture[str], *args: object) -> CliResult:
    """`pipeline ARGS` in this process (so a test can monkeypatch the code under it), as the console script runs."""
    from pipeline.cli.app import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def assert_one_line_error(result: CliResult, *names: str) -> str:
    """Assert the expected-failure contract and that the error line contains every one of `names`; returns it."""
    assert "Traceback" not in result.err + result.out, result.err
    assert result.code == 2, f"exit code {result.code}\n{result.err}"
    lines = [line for line in result.err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.err
    for name in names:
        assert name in errors[0], f"{name!r} not in {errors[0]!r}"
    return errors[0]


__all__ = ["CliResult", "assert_one_line_error", "run_in_process", "run_pipeline"]
