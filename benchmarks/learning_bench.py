"""Does the chain learn? Train a tiny random-init Qwen3-VL on the synthetic rendered-road set and score it on
held-out clips against the train-mean baseline, video only and with the input second's motion in the prompt.

    uv run python benchmarks/learning_bench.py [--budget-minutes 10] [--modes video history]

Prints, per mode: velocity and curvature MAE of the model and of the train-mean baseline (over all held-out
samples, parse failures scored as the train mean), their ratios, and the parse-failure rate; then the goals
(video only: velocity MAE <= 0.8 x train-mean's, parse failures < 5 %; with history: <= 0.5 x). Everything
is measured in this one run; the data are built once and shared by the modes.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

from pipeline.demo.profiles import PROFILES, tiny_dataset_config, tiny_model_config, tiny_train_config
from pipeline.model.inference import GenerationSettings
from pipeline.stages.dataset import stage as dataset
from pipeline.stages.evaluate import stage as evaluate
from pipeline.stages.evaluate.report import headline_table
from pipeline.stages.segment import stage as segment
from pipeline.stages.segment.config import SegmentConfig, parse_size
from pipeline.stages.train import trainer
from pipeline.standins.repo import write_repo
from pipeline.standins.synth_config import SynthConfig
from pipeline.standins.tiny_model import make_tiny_model

GOALS = {"video": 0.8, "history": 0.5}


def build_segments(workdir: Path, args: argparse.Namespace) -> Path:
    """Synthetic repository → segments; returns the segments directory."""
    repo = write_repo(
        SynthConfig(
            output_dir=workdir / "repo",
            n_chunks=args.chunks,
            clips_per_chunk=args.clips_per_chunk,
            width=PROFILES["default"].render_size[0],
            height=PROFILES["default"].render_size[1],
            seed=args.seed,
            frame_code=False,  # a model must not read the time in the clip from a stamped frame index
            overwrite=True,
        )
    )
    segments = workdir / "segments"
    size = parse_size(args.size)
    segment.run(SegmentConfig(input_dir=repo.root, output_dir=segments, max_clips=None, size=size))
    return segments


def build_data(workdir: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Segments (built, or those of an earlier run with --reuse-segments) → one dataset per mode (same split)."""
    segments = workdir / "segments"
    if not (args.reuse_segments and (segments / "metadata" / "segments.json").is_file()):
        segments = build_segments(workdir, args)
    profile = replace(PROFILES["default"], test_ratio=args.test_ratio)
    out = {}
    for mode in args.modes:
        out[mode] = workdir / f"dataset_{mode}"
        dataset.run(tiny_dataset_config(profile, segments, out[mode], args.seed, history=mode == "history"))
    return out


def stop_after(seconds: float):
    """A Trainer callback that ends training once `seconds` of wall time have passed."""
    from transformers import TrainerCallback

    class _Budget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.start > seconds:
                control.should_training_stop = True

    return _Budget()


def train_and_score(mode: str, dataset_dir: Path, workdir: Path, args: argparse.Namespace) -> dict:
    profile = replace(
        PROFILES["default"],
        hidden_size=args.hidden_size,
        layers=args.layers,
        vision_hidden_size=args.vision_hidden_size,
        vision_depth=args.vision_depth,
        bpe_ranks=args.bpe_ranks or None,
        video_fps=args.video_fps,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        first_line_weight=args.first_line_weight,
    )
    model_dir = workdir / f"tiny_{mode}"
    make_tiny_model(model_dir, tiny_model_config(profile, "qwen3_vl", args.seed), overwrite=True)
    config = tiny_train_config(profile, model_dir, dataset_dir, workdir / f"trained_{mode}", args.seed)
    prepared = trainer.prepare(config)
    prepared.trainer.add_callback(stop_after(args.budget_minutes * 60))
    start = time.perf_counter()
    output = prepared.trainer.train()
    train_seconds = time.perf_counter() - start
    result = trainer.finish(prepared, output, train_seconds)
    evaluation = evaluate.run(
        evaluate.EvaluateConfig(
            dataset=dataset_dir,
            output_dir=workdir / f"eval_{mode}",
            model=result.output_dir,
            batch_size=8,
            generation=GenerationSettings(max_new_tokens=400),
        )
    )
    scores = evaluation.scores["all"]
    return {
        "mode": mode,
        "steps": result.global_step,
        "train_seconds": train_seconds,
        "first_loss": result.losses[0] if result.losses else float("nan"),
        "last_loss": result.losses[-1] if result.losses else float("nan"),
        "model_v": scores["model"].velocity_mae,
        "mean_v": scores["train_mean"].velocity_mae,
        "model_k": scores["model"].curvature_mae,
        "mean_k": scores["train_mean"].curvature_mae,
        "failures": evaluation.parse_failure_rate,
        "samples": evaluation.n_samples,
        "table": headline_table(evaluation),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("bench_learning"))
    parser.add_argument("--modes", nargs="+", choices=sorted(GOALS), default=["video", "history"])
    parser.add_argument("--budget-minutes", type=float, default=10.0, help="training wall-time cap per mode")
    d = PROFILES["default"]  # the default demo's sizes
    parser.add_argument("--max-steps", type=int, default=1400, help="the schedule's length (the budget may end it)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--learning-rate", type=float, default=d.learning_rate)
    parser.add_argument(
        "--first-line-weight", type=float, default=d.first_line_weight, help="loss weight of the answer's first line"
    )
    parser.add_argument("--hidden-size", type=int, default=d.hidden_size)
    parser.add_argument("--layers", type=int, default=d.layers)
    parser.add_argument("--vision-hidden-size", type=int, default=d.vision_hidden_size)
    parser.add_argument("--vision-depth", type=int, default=d.vision_depth)
    parser.add_argument(
        "--bpe-ranks", type=int, default=d.bpe_ranks or 0, help="tiny vocabulary: Qwen's first n tokens (0: all)"
    )
    parser.add_argument("--video-fps", type=float, default=d.video_fps, help="frames sampled per second of segment")
    parser.add_argument("--chunks", type=int, default=12, help=f"synthetic chunks (the demo has {d.chunks})")
    parser.add_argument("--clips-per-chunk", type=int, default=d.clips_per_chunk)
    parser.add_argument("--test-ratio", type=float, default=d.test_ratio)
    parser.add_argument("--size", default="x".join(map(str, d.segment_size)), help="segment size fed to the model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reuse-segments", action="store_true", help="keep the segments of an earlier run in --workdir (same options)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    datasets_by_mode = build_data(args.workdir, args)
    print(f"data built in {time.perf_counter() - t0:.0f} s")
    results = [train_and_score(mode, datasets_by_mode[mode], args.workdir, args) for mode in args.modes]

    for r in results:
        print(
            f"\n== {r['mode']}: {r['steps']} steps in {r['train_seconds']:.0f} s, loss {r['first_loss']:.2f} -> "
            f"{r['last_loss']:.2f}, {r['samples']} held-out samples"
        )
        print(r["table"])
    print(
        "\nmode     velocity MAE model / train-mean = ratio   curvature MAE model / train-mean = ratio   "
        "parse failures   goal"
    )
    for r in results:
        ratio_v, ratio_k = r["model_v"] / r["mean_v"], r["model_k"] / r["mean_k"]
        goal = GOALS[r["mode"]]
        met = ratio_v <= goal and (r["mode"] != "video" or r["failures"] < 0.05)
        print(
            f"{r['mode']:8s} {r['model_v']:6.3f} / {r['mean_v']:6.3f} = {ratio_v:5.2f}            "
            f"{r['model_k']:.4f} / {r['mean_k']:.4f} = {ratio_k:5.2f}              {r['failures']:6.1%}        "
            f"<= {goal} x: {'met' if met else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
