"""The `pipeline` command: one typer subcommand per stage. Commands build a config and call the stage's `run`.

This module loads typer, rich and `pipeline.core` only. A command is built, its config module imported, when it is
invoked or its help is printed (`pipeline.cli.lazy`), and it imports its stage when it runs. So `pipeline --help` and
option parsing load no numpy, pandas, torch, transformers, datasets, PyAV, Ray or huggingface_hub (tests/test_cli.py
checks it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.cli.lazy import LazyGroup
from pipeline.core.errors import PipelineError
from pipeline.core.options import build
from pipeline.core.progress import DEFAULT_INTERVAL_S

if TYPE_CHECKING:  # each command's configs are imported when it is built (pipeline.cli.lazy)
    from pipeline.demo.config import DemoConfig
    from pipeline.engines.config import EngineConfig
    from pipeline.stages.dataset.compare_config import CompareConfig
    from pipeline.stages.dataset.config import DatasetConfig
    from pipeline.stages.evaluate.config import EvaluateConfig
    from pipeline.stages.export.config import ExportConfig
    from pipeline.stages.segment.config import SegmentConfig
    from pipeline.stages.train.config import MergeConfig
    from pipeline.standins.serve_config import ServeConfig
    from pipeline.standins.synth_config import SynthConfig
    from pipeline.standins.tiny_model import MakeTinyModelConfig


class Commands(LazyGroup):
    """`pipeline`'s commands, registered below with `command`."""


command = Commands.command

app = typer.Typer(
    name="pipeline",
    cls=Commands,
    help="PhysicalAI-AV → Qwen-VL motion prediction: download, segment, build-dataset, export, train, evaluate, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _configure(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging, and third-party libraries' info lines and bars.")
    ] = False,
    progress_interval: Annotated[
        float,
        typer.Option(
            "--progress-interval",
            envvar="PIPELINE_PROGRESS_INTERVAL",
            min=0.0,
            help="Seconds between progress lines when stderr is not a terminal (on one: a bar).",
        ),
    ] = DEFAULT_INTERVAL_S,
) -> None:
    from pipeline.cli.console import setup

    ctx.call_on_close(setup(verbose=verbose, progress_interval_s=progress_interval))


@command(config="pipeline.standins.synth_config:SynthConfig")
def synth(config: SynthConfig) -> None:
    """Write a synthetic PhysicalAI-AV-shaped repository (rendered-road videos + egomotion)."""
    from pipeline.cli.console import progress_sink
    from pipeline.standins.repo import write_repo

    summary = write_repo(config, progress=progress_sink())
    splits = {s: sum(c.split == s for c in summary.clips) for s in ("train", "val", "test")}
    print(
        f"wrote {len(summary.clips)} clips in {config.n_chunks} chunk(s) "
        f"({config.width}x{config.height}, {config.duration_s:g} s, seed {config.seed}; "
        f"train/val/test {splits['train']}/{splits['val']}/{splits['test']}) to {summary.root}"
    )


@command(config="pipeline.standins.serve_config:ServeConfig")
def serve(
    directory: Annotated[Path, typer.Argument(help="Repository directory to serve (e.g. from `pipeline synth`).")],
    config: ServeConfig,
) -> None:
    """Serve a repository directory over the Hugging Face Hub HTTP protocol on 127.0.0.1 (with optional gating and
    fault injection, to try a client's retries and resume)."""
    import signal
    import time

    from pipeline.standins.hub_server import HubServer

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    token = config.required_token()
    signal.signal(signal.SIGTERM, _stop)  # stop cleanly when a parent process (e.g. the demo) terminates us
    server = HubServer(directory, repo_id=config.repo_id, revision=config.revision, token=token, port=config.port)
    server.set_faults(fail_every=config.fail_every, cut_after=config.cut_after)
    server.start()
    print(f"serving {server.root} as dataset {config.repo_id}@{config.revision} (commit {server.commit})")
    for fault in server.fault_summary():
        print(f"fault injection: {fault}")
    print(f"use it with: HF_ENDPOINT={server.endpoint} HF_HUB_DISABLE_XET=1 pipeline download --chunk 0")
    print("press Ctrl-C to stop")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@command(
    config="pipeline.stages.download.config:DownloadConfig",
    build_config=False,
    context_settings={"allow_extra_args": True},
)
def download(ctx: typer.Context, values: dict[str, Any]) -> None:
    """Download dataset chunks from the Hub (driven by features.csv and clip_index.parquet)."""
    from pipeline.cli.console import progress_sink
    from pipeline.stages.download import stage
    from pipeline.stages.download.config import DownloadConfig

    config = build(DownloadConfig, _with_extra_chunk_ids(ctx, values))
    confirm = (lambda q: typer.confirm(q, default=False)) if sys.stdin.isatty() else None
    result = stage.run(config, progress=progress_sink(), confirm=confirm)
    print(
        f"{len(result.downloaded)} files downloaded, {len(result.files) - len(result.downloaded)} already complete, "
        f"{result.total_bytes / 1e9:.3f} GB of chunk files in {config.output_dir} (manifest: {result.manifest_path})"
    )


def _with_extra_chunk_ids(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """`--chunk 0000 0001 0002`: click takes one value per flag; the command has no positional arguments, so the
    extra words can only be more chunk ids."""
    if ctx.args and not values.get("chunks"):
        raise PipelineError(f"unexpected argument {ctx.args[0]!r} (chunk ids go after --chunk)")
    values["chunks"] = (*values.get("chunks", ()), *ctx.args)
    return values


@command(config="pipeline.stages.segment.config:SegmentConfig", engine="pipeline.engines.config:EngineConfig")
def segment(config: SegmentConfig, engine: EngineConfig) -> None:
    """Cut overlapping 1-second clips from each front-camera video and compute next-second targets."""
    from pipeline.cli.console import progress_sink
    from pipeline.engines.config import make_engine
    from pipeline.stages.segment import stage

    result = stage.run(config, progress=progress_sink(), engine=make_engine(engine, config.workers))
    _print_segments(result)


def _print_segments(result) -> None:
    locked = f", {result.locked} left to another run" if result.locked else ""
    print(
        f"{result.segments} segments from {result.done} clips ({result.reused} already complete), "
        f"{result.skipped} clips skipped{locked}; metadata in {result.metadata_dir}"
    )


@command(
    config="pipeline.stages.prepare.config:PrepareConfig",
    build_config=False,
    context_settings={"allow_extra_args": True},
    engine="pipeline.engines.config:EngineConfig",
)
def prepare(ctx: typer.Context, values: dict[str, Any], engine: EngineConfig) -> None:
    """Stream chunks from the Hub through the cutter: download, cut, delete the zips; resumable."""
    from pipeline.cli.console import progress_sink
    from pipeline.engines.config import make_engine
    from pipeline.stages.prepare import stage
    from pipeline.stages.prepare.config import PrepareConfig

    config = build(PrepareConfig, _with_extra_chunk_ids(ctx, values))
    result = stage.run(config, progress=progress_sink(), engine=make_engine(engine, config.segment.workers))
    print(
        f"{len(result.chunks)} chunk(s) from {config.repo_id}@{result.commit[:12]} "
        f"({len(result.complete_chunks)} already complete)"
    )
    _print_segments(result.segments)


@command("build-dataset", config="pipeline.stages.dataset.config:DatasetConfig")
def build_dataset(config: DatasetConfig) -> None:
    """Build the train/test Hugging Face dataset in Qwen-VL conversation format."""
    from pipeline.cli.console import progress_sink
    from pipeline.stages.dataset.stage import run

    result = run(config, progress=progress_sink())
    for note in result.notes:
        print(note)
    print(
        f"train: {result.counts['train']} segments from {result.clip_counts['train']} clips; "
        f"test: {result.counts['test']} segments from {result.clip_counts['test']} clips; "
        f"skipped (missing video): {result.skipped_missing_video}"
    )
    print(f"wrote {result.output_dir}")


@command("compare-builds", config="pipeline.stages.dataset.compare_config:CompareConfig")
def compare_builds(
    build_a: Annotated[Path, typer.Argument(help="A dataset directory from `pipeline build-dataset` (the older).")],
    build_b: Annotated[Path, typer.Argument(help="Another one (the newer).")],
    config: CompareConfig,
) -> None:
    """Clips added, removed and moved between the train and test sides of two builds, with their revisions and split
    methods: a model trained on one build must not be scored on its own training clips from the other."""
    from pipeline.stages.dataset.compare import run

    comparison = run(build_a, build_b, config.json_path)
    print("\n".join(comparison.lines(config.show)))
    if config.json_path is not None:
        print(f"wrote {config.json_path}")


@command(config="pipeline.stages.export.config:ExportConfig")
def export(config: ExportConfig) -> None:
    """Export the dataset as JSONL for qwen-vl-finetune, LLaMA-Factory and ms-swift, with a ready-to-run training
    file per framework that sets our video sampling (the --video-* values, `pipeline train`'s by default)."""
    from pipeline.cli.console import progress_sink
    from pipeline.stages.export.stage import run

    result = run(config, progress=progress_sink())
    for name, files in result.files.items():
        print(f"{name}: " + ", ".join(str(f) for f in files))


@command("make-tiny-model", config="pipeline.standins.tiny_model:MakeTinyModelConfig")
def make_tiny_model(
    output_dir: Annotated[Path, typer.Argument(help="Directory to write the model + processor to.")],
    config: MakeTinyModelConfig,
) -> None:
    """Build a tiny random-init video VLM + processor (Qwen's vocabulary) for offline tests and the demo."""
    from pipeline.standins.tiny_model import make_tiny_model

    print(make_tiny_model(output_dir, config.model, overwrite=config.overwrite))


@command(config="pipeline.stages.train.config:TrainConfig", layered=True, build_config=False)
def train(
    values: dict[str, Any],
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML file of options (CLI wins).")] = None,
) -> None:
    """Fine-tune a video VLM (Qwen3-VL, Qwen2.5-VL, Qwen3.5, InternVL3.5; LoRA or full) with Trainer (+ DeepSpeed)."""
    from pipeline.cli.console import progress_sink
    from pipeline.stages.train.config import TrainConfig
    from pipeline.stages.train.trainer import run

    config = TrainConfig.from_sources(config_file, values)
    result = run(config, progress=progress_sink())
    loss = f"{result.train_loss:.4f}" if result.train_loss is not None else "n/a"
    print(f"{result.output_dir}: {result.global_step} steps, train loss {loss}, {len(result.skipped_samples)} skipped")


@command("merge-lora", config="pipeline.stages.train.config:MergeConfig")
def merge_lora(config: MergeConfig) -> None:
    """Merge a LoRA adapter into its base model and save full weights with the processor."""
    from pipeline.stages.train.merge import run

    print(run(config))


@command(config="pipeline.stages.evaluate.config:EvaluateConfig")
def evaluate(config: EvaluateConfig) -> None:
    """Score a model, a predictions file or a server's answers on held-out clips against baselines; write a report.

    Video settings default to the training run's (train_config.json in --adapter, --run-dir or --model). With
    --server, answers are appended to OUTPUT_DIR/predictions.jsonl as they arrive; a re-run asks only for the rest.
    """
    from pipeline.cli.console import progress_sink
    from pipeline.stages.evaluate.report import headline_table
    from pipeline.stages.evaluate.stage import run

    result = run(config, progress=progress_sink())
    print(headline_table(result))
    print(f"wrote {config.output_dir}")


@command("serve-model", config="pipeline.stages.serve.config:ServeModelConfig", build_config=False)
def serve_model(
    run_dir: Annotated[Path, typer.Argument(help="Training run directory (from train or merge-lora).")],
    values: dict[str, Any],
) -> None:
    """Serve a training run with vLLM (or transformers serve) so that served prompts and frames are training's;
    --dry-run prints the command line (TRAINING.md: vLLM versions checked)."""
    import shlex

    from pipeline.stages.serve.config import ServeModelConfig
    from pipeline.stages.serve.stage import engine_command, run

    config = build(ServeModelConfig, {**values, "run_dir": run_dir})
    if config.dry_run:
        print(shlex.join(engine_command(config)))
        return
    raise typer.Exit(run(config))


@command(config="pipeline.demo.config:DemoConfig")
def demo(config: DemoConfig) -> None:
    """Run the whole chain offline on a synthetic dataset: synth → serve → download → segment → build-dataset →
    train a tiny Qwen-VL → evaluate; print the model-vs-baselines table."""
    from pipeline.cli.console import progress_sink
    from pipeline.demo.workflow import run as run_demo

    result = run_demo(config, progress_sink())
    print(result.headline)
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.seconds.items())
    print(f"stage times: {stages}")
    print(f"report: {result.report_dir / 'report.html'} (and report.md)")


INTERRUPTED = "interrupted: finished work was kept; a re-run resumes"
"""What a run stopped by Ctrl-C or SIGINT says last (exit code 130)."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning `PipelineError` into one line on stderr and exit code 2.

    Usage errors (unknown flag, bad value) are click's: also one line and exit code 2.
    """
    try:
        app(args=argv)
    except SystemExit as done:
        if done.code == 130:  # typer's exit for a KeyboardInterrupt in a command, without a word
            print(INTERRUPTED, file=sys.stderr)
        raise
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)


def run_script(command: str) -> None:
    """Run one subcommand with this process's arguments (for the thin top-level scripts)."""
    main([command, *sys.argv[1:]])


__all__ = ["app", "main", "run_script"]
