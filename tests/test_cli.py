"""The CLI's contract: help on every command, exit code 2 and one line for usage errors, and a quick start: no
heavy library is loaded until a command runs."""

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


# What a command loads when it runs, never the CLI itself (its import, --help pages, option parsing).
HEAVY_MODULES = (
    "pandas",
    "pyarrow",
    "numpy",
    "torch",
    "transformers",
    "datasets",
    "av",
    "ray",
    "huggingface_hub",
    "scipy",
    "cv2",
    "matplotlib",
    "yaml",
    "pebble",
    "httpx",
    "openai",
)


def heavy_modules_after(code: str) -> list[str]:
    """The `HEAVY_MODULES` a fresh interpreter holds after running `code`."""
    check = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [name for name in result.stdout.strip().split(",") if name]


def test_importing_the_cli_loads_no_heavy_module():
    assert heavy_modules_after("import pipeline.cli.app") == []


def test_help_pages_load_no_heavy_module():
    code = (
        "from typer.testing import CliRunner\n"
        "from pipeline.cli.app import app\n"
        "runner = CliRunner()\n"
        f"for args in [['--help'], *([command, '--help'] for command in {COMMANDS!r})]:\n"
        "    result = runner.invoke(app, args)\n"
        "    assert result.exit_code == 0 and 'Usage' in result.output, (args, result.output)\n"
    )
    assert heavy_modules_after(code) == []
