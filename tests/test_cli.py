"""The CLI's contract: help on every command, exit code 2 and one line for usage errors."""

import subprocess
import sys

import pytest

from pipeline.cli.app import app

COMMANDS = sorted(cmd.name or cmd.callback.__name__.replace("_", "-") for cmd in app.registered_commands)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_unknown_option_is_a_usage_error():
    result = run_cli("download", "--no-such-flag")
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_help_does_not_import_torch():
    code = "import sys; from pipeline.cli.app import app; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False"
