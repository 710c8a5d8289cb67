"""The `pipeline` command: one typer subcommand per stage. Commands build a config and call the stage's `run`.

Heavy modules (torch, transformers, datasets) are imported inside the commands, so `pipeline --help` and the
data stages stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.catalog import DEFAULT_CAMERA, REPO_ID
from pipeline.dataset import DatasetConfig
from pipeline.download_config import DownloadConfig
from pipeline.errors import PipelineError
from pipeline.evaluate import EvaluateConfig
from pipeline.export import ExportConfig
from pipeline.options import build, config_command
from pipeline.progress import DEFAULT_INTERVAL_S
from pipeline.segment_config import SegmentConfig
from pipeline.train.config import TrainConfig
from pipeline.train.merge import MergeConfig

app = typer.Typer(
    name="pipeline",
    help="PhysicalAI-AV → Qwen-VL motion prediction: download, segment, build-dataset, export, train, evaluate, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
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
    from pipeline.console import setup

    ctx.call_on_close(setup(verbose=verbose, progress_interval_s=progress_interval))


@app.command()
def synth(
    output_dir: Annotated[
        str, typer.Option("--output-dir", "--output_dir", help="Repository directory to create.")
    ] = "synthetic_physical_ai_av",
    chunks: Annotated[int, typer.Option("--chunks", "--n-chunks", "--n_chunks", help="Number of chunks.")] = 1,
    clips_per_chunk: Annotated[
        int, typer.Option("--clips-per-chunk", "--clips_per_chunk", help="Clips in each chunk.")
    ] = 3,
    first_chunk: Annotated[int, typer.Option("--first-chunk", "--first_chunk", help="Id of the first chunk.")] = 0,
    size: Annotated[
        str | None, typer.Option("--size", help="Video size WxH, e.g. 1920x1080 (overrides --width/--height).")
    ] = None,
    width: Annotated[int, typer.Option("--width", help="Video width, px (even, >= 128).")] = 256,
    height: Annotated[int, typer.Option("--height", help="Video height, px (even, >= 72).")] = 144,
    duration: Annotated[
        float, typer.Option("--duration", "--duration-s", "--duration_s", help="Clip length, s.")
    ] = 20.0,
    fps: Annotated[float, typer.Option("--fps", help="Video frame rate.")] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed and flags give byte-identical files.")] = 0,
    cameras: Annotated[
        list[str] | None,
        typer.Option("--camera", "--cameras", help="Camera feature(s) to render (repeatable).", show_default=False),
    ] = None,
    frame_code: Annotated[
        bool,
        typer.Option(
            "--frame-code/--no-frame-code", help="Stamp each frame's index in its top-left corner (for checks)."
        ),
    ] = True,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", "--force", help="Replace an existing --output-dir.")
    ] = False,
) -> None:
    """Write a synthetic PhysicalAI-AV-shaped repository (rendered-road videos + egomotion)."""
    from pathlib import Path

    from pipeline.console import progress_sink
    from pipeline.standins.repo import write_repo
    from pipeline.standins.synth_config import DEFAULT_CAMERA, SynthConfig

    if size is not None:
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise PipelineError(f"--size {size}: expected WxH, e.g. 1920x1080") from None
    config = SynthConfig(
        output_dir=Path(output_dir),
        n_chunks=chunks,
        clips_per_chunk=clips_per_chunk,
        first_chunk=first_chunk,
        width=width,
        height=height,
        duration_s=duration,
        fps=fps,
        seed=seed,
        cameras=tuple(cameras) if cameras else (DEFAULT_CAMERA,),
        frame_code=frame_code,
        overwrite=overwrite,
    )
    summary = write_repo(config, progress=progress_sink())
    splits = {s: sum(c.split == s for c in summary.clips) for s in ("train", "val", "test")}
    print(
        f"wrote {len(summary.clips)} clips in {config.n_chunks} chunk(s) "
        f"({config.width}x{config.height}, {config.duration_s:g} s, seed {config.seed}; "
        f"train/val/test {splits['train']}/{splits['val']}/{splits['test']}) to {summary.root}"
    )


@app.command()
def serve(
    directory: Annotated[Path, typer.Argument(help="Repository directory to serve (e.g. from `pipeline synth`).")],
    port: Annotated[int, typer.Option("--port", help="TCP port on 127.0.0.1 (0: any free port).")] = 0,
    token: Annotated[
        str | None, typer.Option("--token", help="Gated mode: require `Authorization: Bearer TOKEN`.")
    ] = None,
    gated: Annotated[
        bool, typer.Option("--gated", help="Gated mode with the token in $HF_TOKEN (kept off the command line).")
    ] = False,
    fail_every: Annotated[
        int, typer.Option("--fail-every", help="Fault injection: answer every N-th file request with HTTP 500.")
    ] = 0,
    cut_after: Annotated[
        int | None,
        typer.Option("--cut-after", help="Fault injection: drop the connection after BYTES of each file's first GET."),
    ] = None,
    repo_id: Annotated[str, typer.Option("--repo-id", "--repo_id", help="Dataset repo id to answer as.")] = REPO_ID,
    revision: Annotated[str, typer.Option("--revision", help="Branch name to answer as.")] = "main",
) -> None:
    """Serve a repository directory over the Hugging Face Hub HTTP protocol on 127.0.0.1 (with optional gating and
    fault injection, to try a client's retries and resume)."""
    import os
    import signal
    import time

    from pipeline.standins.hub_server import HubServer

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if gated and token is None:
        token = os.environ.get("HF_TOKEN")
        if not token:
            raise PipelineError("--gated: set HF_TOKEN to the token the server should require (or pass --token)")
    signal.signal(signal.SIGTERM, _stop)  # stop cleanly when a parent process (e.g. the demo) terminates us
    server = HubServer(directory, repo_id=repo_id, revision=revision, token=token, port=port)
    server.set_faults(fail_every=fail_every, cut_after=cut_after)
    server.start()
    print(f"serving {server.root} as dataset {repo_id}@{revision} (commit {server.commit})")
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


@app.command(context_settings={"allow_extra_args": True})
@config_command(DownloadConfig, build_config=False)
def download(ctx: typer.Context, values: dict[str, Any]) -> None:
    """Download dataset chunks from the Hub (driven by features.csv and clip_index.parquet)."""
    from pipeline import download as stage
    from pipeline.console import progress_sink

    # `--chunk 0000 0001 0002`: click takes one value per flag; the command has no positional arguments, so
    # the extra words can only be more chunk ids.
    if ctx.args and not values.get("chunks"):
        raise PipelineError(f"unexpected argument {ctx.args[0]!r} (chunk ids go after --chunk)")
    values["chunks"] = (*values.get("chunks", ()), *ctx.args)
    config = build(DownloadConfig, values)
    confirm = (lambda q: typer.confirm(q, default=False)) if sys.stdin.isatty() else None
    result = stage.run(config, progress=progress_sink(), confirm=confirm)
    print(
        f"{len(result.downloaded)} files downloaded, {len(result.files) - len(result.downloaded)} already complete, "
        f"{result.total_bytes / 1e9:.3f} GB of chunk files in {config.output_dir} (manifest: {result.manifest_path})"
    )


_EngineOption = Annotated[
    str,
    typer.Option(
        "--engine", help="local (a process pool here) or ray (Ray tasks: a local cluster, or --ray-address)."
    ),
]
_RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        "--ray_address",
        envvar="RAY_ADDRESS",
        help="Ray cluster to join (host:port of `ray start --head`, or auto); default: start a local one.",
    ),
]
_RayCpusOption = Annotated[
    int | None, typer.Option("--ray-cpus", "--ray_cpus", help="CPUs of the local Ray cluster (default: all).")
]
_RetriesOption = Annotated[
    int, typer.Option("--retries", help="Extra attempts of a failed chunk download or a clip whose worker died.")
]


@app.command()
@config_command(SegmentConfig)
def segment(
    config: SegmentConfig,
    engine: _EngineOption = "local",
    ray_address: _RayAddressOption = None,
    ray_cpus: _RayCpusOption = None,
    retries: _RetriesOption = 2,
) -> None:
    """Cut overlapping 1-second clips from each front-camera video and compute next-second targets."""
    from pipeline import segment as stage
    from pipeline.console import progress_sink
    from pipeline.engine_choice import EngineConfig, make_engine

    engine_config = EngineConfig(engine=engine, ray_address=ray_address, ray_cpus=ray_cpus, retries=retries)  # type: ignore[arg-type]
    result = stage.run(config, progress=progress_sink(), engine=make_engine(engine_config, config.workers))
    _print_segments(result)


def _print_segments(result) -> None:
    locked = f", {result.locked} left to another run" if result.locked else ""
    print(
        f"{result.segments} segments from {result.done} clips ({result.reused} already complete), "
        f"{result.skipped} clips skipped{locked}; metadata in {result.metadata_dir}"
    )


@app.command(context_settings={"allow_extra_args": True})
def prepare(
    ctx: typer.Context,
    chunk: Annotated[
        list[str] | None,
        typer.Option("--chunk", "--chunks", help="Chunk ids: repeat, list (space or comma separated) or range 0-9."),
    ] = None,
    all_chunks: Annotated[bool, typer.Option("--all", help="Every chunk in clip_index.parquet.")] = False,
    split: Annotated[
        str | None, typer.Option("--split", help="train, val or test: only chunks and clips of that split.")
    ] = None,
    revision: Annotated[str, typer.Option("--revision", help="Branch, tag or commit of the dataset.")] = "main",
    repo_id: Annotated[str, typer.Option("--repo-id", "--repo_id", help="Dataset repo on the Hub.")] = REPO_ID,
    source_dir: Annotated[
        Path, typer.Option("--source-dir", "--source_dir", help="Where a chunk's source zips live while it is cut.")
    ] = Path("physical_ai_data"),
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "--output_dir", help="Where video_segments/ and metadata/ go.")
    ] = Path("qwen_video_segments"),
    keep_source: Annotated[
        bool, typer.Option("--keep-source", "--keep_source", help="Keep each chunk's zips after it is cut.")
    ] = False,
    max_chunks_in_flight: Annotated[
        int,
        typer.Option(
            "--max-chunks-in-flight", "--max_chunks_in_flight", help="Chunks of source on disk at once (per node)."
        ),
    ] = 2,
    transfers: Annotated[int, typer.Option("--max-workers", "--max_workers", help="Parallel file transfers.")] = 8,
    camera: Annotated[str, typer.Option("--camera", help="Camera feature name.")] = DEFAULT_CAMERA,
    target_hz: Annotated[
        float,
        typer.Option(
            "--target-hz",
            "--target_hz",
            "--fps",
            help="Target samples per second (30 pairs for 1 s); --fps is the original scripts' name.",
        ),
    ] = 30.0,
    window: Annotated[float, typer.Option("--window", help="Segment length, s.")] = 1.0,
    stride: Annotated[float, typer.Option("--stride", help="Segment start step, s (< window: overlap).")] = 1.0,
    size: Annotated[str, typer.Option("--size", help="Output WIDTHxHEIGHT, or 'native'.")] = "448x252",
    workers: Annotated[int, typer.Option("--workers", help="Processes over clips (--engine local).")] = 1,
    fast_decode: Annotated[
        bool, typer.Option("--fast-decode", "--fast_decode", help="Skip H.264 deblocking when decoding (~15% faster).")
    ] = False,
    engine: _EngineOption = "local",
    ray_address: _RayAddressOption = None,
    ray_cpus: _RayCpusOption = None,
    retries: _RetriesOption = 2,
) -> None:
    """Stream chunks from the Hub through the cutter: download, cut, delete the zips; resumable."""
    from pipeline import prepare as stage
    from pipeline.console import progress_sink
    from pipeline.engine_choice import EngineConfig, make_engine
    from pipeline.segment_config import SegmentConfig, parse_size

    if ctx.args and not chunk:
        raise PipelineError(f"unexpected argument {ctx.args[0]!r} (chunk ids go after --chunk)")
    segment_config = SegmentConfig(
        input_dir=source_dir,
        output_dir=output_dir,
        max_clips=None,
        camera=camera,
        split=split,
        window_s=window,
        stride_s=stride,
        size=parse_size(size),
        target_hz=target_hz,
        workers=workers,
        fast_decode=fast_decode,
    )
    config = stage.PrepareConfig(
        segment=segment_config,
        chunks=(*(chunk or ()), *ctx.args),
        all_chunks=all_chunks,
        revision=revision,
        repo_id=repo_id,
        transfers=transfers,
        keep_source=keep_source,
        max_chunks_in_flight=max_chunks_in_flight,
    )
    engine_config = EngineConfig(engine=engine, ray_address=ray_address, ray_cpus=ray_cpus, retries=retries)  # type: ignore[arg-type]
    result = stage.run(config, progress=progress_sink(), engine=make_engine(engine_config, workers))
    print(
        f"{len(result.chunks)} chunk(s) from {config.repo_id}@{result.commit[:12]} "
        f"({len(result.complete_chunks)} already complete)"
    )
    _print_segments(result.segments)


@app.command("build-dataset")
@config_command(DatasetConfig)
def build_dataset(config: DatasetConfig) -> None:
    """Build the train/test Hugging Face dataset in Qwen-VL conversation format."""
    from pipeline.console import progress_sink
    from pipeline.dataset import run

    result = run(config, progress=progress_sink())
    for note in result.notes:
        print(note)
    print(
        f"train: {result.counts['train']} segments from {result.clip_counts['train']} clips; "
        f"test: {result.counts['test']} segments from {result.clip_counts['test']} clips; "
        f"skipped (missing video): {result.skipped_missing_video}"
    )
    print(f"wrote {result.output_dir}")


@app.command()
@config_command(ExportConfig)
def export(config: ExportConfig) -> None:
    """Export the dataset as JSONL for qwen-vl-finetune, LLaMA-Factory and ms-swift, with a ready-to-run training
    file per framework that sets our video sampling (the --video-* values, `pipeline train`'s by default)."""
    from pipeline.console import progress_sink
    from pipeline.export import run

    result = run(config, progress=progress_sink())
    for name, files in result.files.items():
        print(f"{name}: " + ", ".join(str(f) for f in files))


@app.command("make-tiny-model")
def make_tiny_model(
    output_dir: Annotated[Path, typer.Argument(help="Directory to write the model + processor to.")],
    family: Annotated[str, typer.Option("--family", help="qwen3_vl or qwen2_5_vl.")] = "qwen3_vl",
    hidden_size: Annotated[int, typer.Option("--hidden-size", "--hidden_size", help="Text hidden size.")] = 64,
    layers: Annotated[int, typer.Option("--layers", help="Text decoder layers.")] = 2,
    heads: Annotated[int, typer.Option("--heads", help="Text attention heads.")] = 4,
    intermediate_size: Annotated[
        int, typer.Option("--intermediate-size", "--intermediate_size", help="Text MLP width.")
    ] = 128,
    vision_depth: Annotated[int, typer.Option("--vision-depth", "--vision_depth", help="Vision blocks.")] = 2,
    bpe_ranks: Annotated[
        int | None,
        typer.Option(
            "--bpe-ranks",
            "--bpe_ranks",
            help="Keep only Qwen's first N BPE tokens (e.g. 5000: ~15x cheaper CPU training). Default: all.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random-init seed.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing directory.")] = False,
) -> None:
    """Build a tiny random-init Qwen-VL model + processor (Qwen's vocabulary) for offline tests and the demo."""
    from pipeline.standins.tiny_model import TinyModelConfig, make_tiny_model

    config = TinyModelConfig(
        family=family,
        hidden_size=hidden_size,
        layers=layers,
        heads=heads,
        kv_heads=max(1, heads // 2),
        intermediate_size=intermediate_size,
        vision_depth=vision_depth,
        bpe_ranks=bpe_ranks,
        seed=seed,
    )
    path = make_tiny_model(output_dir, config, overwrite=overwrite)
    print(path)


@app.command()
@config_command(TrainConfig, layered=True, build_config=False)
def train(
    values: dict[str, Any],
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML file of options (CLI wins).")] = None,
) -> None:
    """Fine-tune a Qwen-VL video model (LoRA or full) with transformers Trainer (+ DeepSpeed)."""
    from pipeline.console import progress_sink
    from pipeline.train.trainer import run

    config = TrainConfig.from_sources(config_file, values)
    result = run(config, progress=progress_sink())
    loss = f"{result.train_loss:.4f}" if result.train_loss is not None else "n/a"
    print(f"{result.output_dir}: {result.global_step} steps, train loss {loss}, {len(result.skipped_samples)} skipped")


@app.command("merge-lora")
@config_command(MergeConfig)
def merge_lora(config: MergeConfig) -> None:
    """Merge a LoRA adapter into its base model and save full weights with the processor."""
    from pipeline.train.merge import run

    print(run(config))


@app.command()
@config_command(EvaluateConfig)
def evaluate(config: EvaluateConfig) -> None:
    """Score a model, a predictions file or a server's answers on held-out clips against baselines; write a report.

    Video settings default to the training run's (train_config.json in --adapter, --run-dir or --model). With
    --server, answers are appended to OUTPUT_DIR/predictions.jsonl as they arrive; a re-run asks only for the rest.
    """
    from pipeline.console import progress_sink
    from pipeline.evaluate import run
    from pipeline.report import headline_table

    result = run(config, progress=progress_sink())
    print(headline_table(result))
    print(f"wrote {config.output_dir}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option("--workdir", help="Where every stage writes.")] = Path("demo_workdir"),
    quick: Annotated[bool, typer.Option("--quick", help="CI size: a few clips, a few steps (< 2 min).")] = False,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the served repo and every stage's output, not only the report.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of data, split, model init and training.")] = 0,
    family: Annotated[str, typer.Option("--family", help="Tiny model family: qwen3_vl or qwen2_5_vl.")] = "qwen3_vl",
    history: Annotated[
        bool, typer.Option("--history/--no-history", help="Put the input second's measured motion in the prompt.")
    ] = False,
) -> None:
    """Run the whole chain offline on a synthetic dataset: synth → serve → download → segment → build-dataset →
    train a tiny Qwen-VL → evaluate; print the model-vs-baselines table."""
    from pipeline.console import progress_sink
    from pipeline.demo import DemoConfig
    from pipeline.demo import run as run_demo

    result = run_demo(
        DemoConfig(workdir=workdir, quick=quick, keep=keep, seed=seed, family=family, history=history),
        progress_sink(),
    )
    print(result.headline)
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.seconds.items())
    print(f"stage times: {stages}")
    print(f"report: {result.report_dir / 'report.html'} (and report.md)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning `PipelineError` into one line on stderr and exit code 2.

    Usage errors (unknown flag, bad value) are click's: also one line and exit code 2.
    """
    try:
        app(args=argv)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("interrupted: finished work was kept; a re-run resumes", file=sys.stderr)
        sys.exit(130)


def run_script(command: str) -> None:
    """Run one subcommand with this process's arguments (for the thin top-level scripts)."""
    main([command, *sys.argv[1:]])


__all__ = ["app", "main", "run_script"]
