"""The CLI's contract: help on every command, exit code 2 and one line for usage errors, and a quick start: no
heavy library is loaded until a command runs."""

import subprocess
import sys

import pytest
import typer.main

from pipeline.cli.app import app

COMMANDS = sorted(typer.main.get_command(app).commands)


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


def command_modules_after(args: list[str]) -> list[str]:
    """The modules of stages, stand-ins, demo and engines a fresh interpreter holds after `pipeline ARGS`."""
    code = (
        "import sys\n"
        "from pipeline.cli.app import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "layers = ('pipeline.stages', 'pipeline.standins', 'pipeline.demo', 'pipeline.engines')\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith(layers))), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return [name for name in result.stderr.strip().split(",") if name]


def test_top_level_help_builds_no_command():
    assert command_modules_after(["--help"]) == []


def test_a_command_imports_its_configs_only():
    assert command_modules_after(["synth", "--help"]) == ["pipeline.standins", "pipeline.standins.synth_config"]
    segment = command_modules_after(["segment", "--help"])
    assert "pipeline.engines.config" in segment and not [m for m in segment if m.startswith("pipeline.standins")]


def test_command_list_shows_each_built_commands_short_help():
    group = typer.main.get_command(app)
    for name, spec in group.commands.specs.items():
        for limit in (45, 80, 200):
            assert spec.summary(name).get_short_help_str(limit) == group.commands[name].get_short_help_str(limit)
