"""How long `pipeline --help` takes to start, against the floor any typer CLI pays: `python -c "import typer, rich"`.

Run: `uv run python benchmarks/cli_startup_bench.py [--runs 7]`

Each command is timed as a whole process (interpreter start, imports, the help page), each run a fresh subprocess of
this virtual environment: its installed `pipeline` script and its `python`. The commands alternate, so load from other
jobs on the machine falls on all alike. A third reference is the `--help` of a two-command typer app in typer's default
rich mode, which renders help with rich's markdown, tables and syntax highlighting (`pipeline` prints click's plain
help pages). The package's `.pyc` files are compiled first, as a user's first run writes them. Prints each command's
median wall-clock and CPU (user + system) seconds over `--runs` runs and the ratios of `pipeline --help`'s medians to
the others'; the goal is at most 2x `import typer, rich` in wall-clock time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pipeline

TYPER_APP = '''
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""


@app.command()
def bye() -> None:
    """Say bye."""


app()
'''


def run_seconds(argv: list[str]) -> tuple[float, float]:
    """(wall-clock, CPU) seconds of one run of `argv`, output discarded; raises `CalledProcessError` if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def measure(commands: dict[str, list[str]], runs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall-clock, CPU) seconds of each command per run; the commands alternate within each run."""
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            seconds[name].append(run_seconds(argv))
    return seconds


def report(seconds: dict[str, list[tuple[float, float]]]) -> None:
    """Print each command's medians, then `pipeline --help`'s (the first command's) ratio to each other one."""
    medians = {
        name: [statistics.median(column) for column in zip(*runs, strict=True)] for name, runs in seconds.items()
    }
    width = max(map(len, medians))
    for name, (wall, cpu) in medians.items():
        shown = " ".join(f"{w:.2f}" for w, _ in seconds[name])
        print(f"{name:<{width}}  median wall {wall:.3f} s, CPU {cpu:.3f} s  (wall per run: {shown})")
    (cli, (cli_wall, cli_cpu)), *references = medians.items()
    for name, (wall, cpu) in references:
        print(f"{cli} / {name}: {cli_wall / wall:.2f}x wall, {cli_cpu / cpu:.2f}x CPU")


def main(runs: int) -> None:
    script = Path(sys.executable).parent / "pipeline"
    if not script.is_file():
        sys.exit(f"no {script}: install the project first (uv sync)")
    # A user's first run writes the package's .pyc files; machines with PYTHONDONTWRITEBYTECODE never do, and every
    # run would compile the package again. Compile once, so each run reads them as an installed package does.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(pipeline.__file__).parent)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        typer_app = Path(tmp) / "typer_app.py"
        typer_app.write_text(TYPER_APP)
        commands = {
            "pipeline --help": [str(script), "--help"],
            'python -c "import typer, rich"': [sys.executable, "-c", "import typer, rich"],
            "a two-command typer app --help": [sys.executable, str(typer_app), "--help"],
        }
        report(measure(commands, runs))
    print("goal: pipeline --help within 2x of import typer, rich (wall)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Runs of each command (default: 7).")
    main(parser.parse_args().runs)
