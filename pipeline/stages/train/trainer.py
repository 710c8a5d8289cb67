"""Stage 4: fine-tune a video VLM on the motion dataset with transformers `Trainer` (LoRA or full; DeepSpeed ready).

Three blocks, as in TRL's VLM example: model (+ LoRA / frozen parts), data (rows → PyAV frames → processor →
labelled ids), trainer. The output directory ends up holding the adapter (or full weights), the processor,
`train_config.json` (the resolved config) and `run_summary.json`, so `--model DIR` / `--adapter DIR` load offline.
Works unchanged under `torchrun` (every rank runs `run`; only rank 0 writes the side files).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.atomic import write_json
from pipeline.core.errors import PipelineError
from pipeline.core.permissions import follow_umask
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.model.collator import (
    SampleEncoder,
    VideoChatCollator,
    VideoChatDataset,
    layout_summary,
    video_paths,
    video_token_count,
)
from pipeline.model.compatibility import check_checkpoint
from pipeline.model.families import family_of
from pipeline.model.modeling import (
    apply_lora,
    check_family,
    count_parameters,
    load_model_and_processor,
    numel,
    set_trainable_parts,
)
from pipeline.model.serving_template import write_serving_template
from pipeline.model.video_input import probe_video
from pipeline.stages.train.config import CONFIG_FILE, TrainConfig
from pipeline.stages.train.run_dir import check_output_dir

log = logging.getLogger(__name__)

SUMMARY_FILE = "run_summary.json"
REQUIRED_COLUMNS = ("messages",)


@dataclass
class TrainResult:
    """What a training run did."""

    output_dir: str  # where the adapter / weights and the processor were saved
    global_step: int  # optimizer steps done (counting those before a resume)
    train_loss: float | None  # mean training loss over this invocation's steps
    losses: list[float] = field(default_factory=list)  # logged training losses, in order
    eval_loss: float | None = None  # loss on the test split (with --eval)
    train_samples: int = 0  # rows trained on
    skipped_samples: list[dict[str, str]] = field(default_factory=list)  # {"id", "reason"} of rows left out
    video_tokens_per_sample: int | None = None  # video tokens of the first sample
    trainable_parameters: int = 0  # parameters updated
    total_parameters: int = 0  # all parameters of the (wrapped) model
    parameter_dtypes: dict[str, dict[str, int]] = field(default_factory=dict)  # `parameter_dtypes` of the model
    peak_gpu_memory_gb: float | None = None  # torch.cuda.max_memory_allocated of this process, 1e9 B (None on CPU)
    seconds: float = 0.0  # wall time of trainer.train()


def load_rows(dataset_dir: str | Path, split: str, video_root: str | None = None) -> Any:
    """A split of the stage-3 dataset with absolute video paths, checked for the columns training needs.

    Raises:
        PipelineError: missing dataset/split or columns.
    """
    import datasets

    from pipeline.contracts.dataset_reader import load_split

    split_dir = Path(dataset_dir) / split
    if split_dir.is_dir():
        # Checked on the raw split first: load_split itself reads `messages`.
        try:
            columns = datasets.load_from_disk(str(split_dir)).column_names
        except (FileNotFoundError, ValueError) as err:
            raise PipelineError(f"--dataset {split_dir}: not a saved dataset ({err})") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            have = ", ".join(columns)
            raise PipelineError(
                f"--dataset {dataset_dir}: split {split} lacks column(s) {', '.join(missing)} (has {have})"
            )
    return load_split(dataset_dir, split, video_root=video_root)


def readable_rows(rows: Any, progress: ProgressSink) -> tuple[list[int], list[dict[str, str]]]:
    """Indices of rows whose every video opens and decodes a frame; the others as {"id", "reason"}."""
    keep: list[int] = []
    skipped: list[dict[str, str]] = []
    progress.start("checking videos", len(rows))
    for i in range(len(rows)):
        row = rows[i]
        reasons = [r for r in (probe_video(p) for p in video_paths(row["messages"])) if r]
        if reasons:
            skipped.append({"id": str(row.get("id", i)), "reason": reasons[0]})
        else:
            keep.append(i)
        progress.advance()
    progress.finish()
    return keep, skipped


def weights_dtype(config: TrainConfig) -> str:
    """The dtype the model is loaded in, whatever the checkpoint's (transformers 5 would keep a bf16 checkpoint
    bf16): bfloat16 with --bf16; else float32, so that full fine-tuning updates fp32 weights and --fp16 runs as
    mixed precision over fp32 master weights (autocast; the grad scaler refuses fp16 parameters)."""
    return "bfloat16" if config.bf16 else "float32"


def parameter_dtypes(model: Any) -> dict[str, dict[str, int]]:
    """Parameter counts per dtype, split into trainable and frozen: {"trainable": {"float32": n}, "frozen": ...}."""
    counts: dict[str, dict[str, int]] = {"trainable": {}, "frozen": {}}
    for param in model.parameters():
        group = counts["trainable" if param.requires_grad else "frozen"]
        name = str(param.dtype).removeprefix("torch.")
        group[name] = group.get(name, 0) + numel(param)
    return counts


def peak_gpu_memory_gb() -> float | None:
    """Peak memory allocated by torch on this process's GPU, in GB (1e9 bytes); None without CUDA."""
    import torch

    return torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else None


def prepare_model(config: TrainConfig, model: Any) -> Any:
    """Freeze/unfreeze parts or attach LoRA per the config; returns the model to train."""
    model.config.use_cache = False
    if config.lora.enable:
        for param in model.parameters():
            param.requires_grad_(False)
        if config.gradient_checkpointing:
            model.enable_input_require_grads()
        model = apply_lora(model, config.lora, tune_vision=config.tune_mm_vision, tune_mlp=config.tune_mm_mlp)
    else:
        counts = set_trainable_parts(model, config.tune_mm_llm, config.tune_mm_vision, config.tune_mm_mlp)
        log.info("full fine-tuning, trainable parameters per part: %s", counts)
    return model


def _progress_callback(progress: ProgressSink, losses: list[float]) -> Any:
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            progress.start("training", state.max_steps)
            if state.global_step:
                progress.advance(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            progress.advance()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))
                log.info("step %d: loss %.4f", state.global_step, logs["loss"])

        def on_train_end(self, args, state, control, **kwargs):
            progress.finish()

    return _Progress()


def _settings_callback(config: TrainConfig) -> Any:
    """Writes the run's `train_config.json` into every checkpoint directory, so that a checkpoint evaluated or
    merged on its own carries the video settings it was trained with, and gives its files the umask's modes."""
    from transformers import TrainerCallback

    class _Settings(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and checkpoint.is_dir():
                write_json(checkpoint / CONFIG_FILE, config.to_json())
                follow_umask(checkpoint)

    return _Settings()


def training_arguments(config: TrainConfig) -> Any:
    import dataclasses

    from transformers import TrainingArguments

    # transformers 5.2x renamed gradient_checkpointing* to activation_checkpointing* (old names warn).
    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    prefix = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    checkpointing = {
        prefix: config.gradient_checkpointing,
        f"{prefix}_kwargs": {"use_reentrant": False} if config.gradient_checkpointing else None,
    }
    # transformers 5 dropped `warmup_ratio`: a `warmup_steps` below 1 is the fraction of the steps that warm up
    # (TrainConfig keeps warmup_ratio in [0, 1), so it is always read as one).
    warmup_fraction = config.warmup_ratio
    import torch

    return TrainingArguments(
        **checkpointing,
        # Without a GPU, say so: with DeepSpeed on CPU, transformers would otherwise set up a one-process world
        # under torchrun (world_size 1) and DeepSpeed's batch-size check fails on every rank.
        use_cpu=not torch.cuda.is_available(),
        output_dir=config.output_dir,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=warmup_fraction,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        bf16=config.bf16,
        fp16=config.fp16,
        deepspeed=config.deepspeed,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to=[] if config.report_to == "none" else [config.report_to],
        remove_unused_columns=False,
        dataloader_num_workers=config.dataloader_num_workers,
        dataloader_pin_memory=False,
        disable_tqdm=True,
        eval_strategy="no",
    )


@dataclass
class TrainingRun:
    """A prepared run: the Trainer and what `finish` needs."""

    config: TrainConfig  # the resolved configuration
    trainer: Any  # transformers.Trainer, ready to train
    processor: Any  # saved next to the weights
    encoder: SampleEncoder  # rows → model inputs (also for inspecting the trained model)
    collator: VideoChatCollator  # counts samples dropped at decode time
    resume: str | None  # checkpoint to resume from
    train_samples: int  # rows kept for training
    skipped: list[dict[str, str]]  # rows left out, with reasons
    video_tokens: int  # video tokens of the first sample
    losses: list[float]  # filled by the logging callback
    started: float  # time.time() when the run began: files modified since are the run's (`follow_umask`)


def prepare(config: TrainConfig, progress: ProgressSink | None = None) -> TrainingRun:
    """Check inputs, load data and model, build the Trainer (nothing is trained or written yet).

    Raises:
        PipelineError: bad dataset/columns, unloadable model, output dir holding another run, no readable sample.
    """
    from transformers.trainer_callback import PrinterCallback

    from pipeline.model.loss import answer_only_trainer_class, line_break_token_id

    progress = progress or NullProgress()
    started = time.time()
    resume = check_output_dir(config)
    if resume is not None:
        check_checkpoint(resume, config.model)  # another model's checkpoint is refused before anything is written
    check_family(config.model)  # an unsupported model is refused before any video is read
    rows = load_rows(config.dataset, "train", config.video_root)
    if config.max_train_samples is not None:
        rows = rows.select(range(min(config.max_train_samples, len(rows))))
    eval_rows = load_rows(config.dataset, "test", config.video_root) if config.eval else None
    # TrainingArguments first: it sets up torch.distributed / DeepSpeed (ZeRO-3 needs it before the model loads).
    args = training_arguments(config)

    keep, skipped = readable_rows(rows, progress)
    for item in skipped:
        log.warning("skipping sample %s: %s", item["id"], item["reason"])
    if not keep:
        raise PipelineError(f"--dataset {config.dataset}: no train sample has a readable video")
    rows = rows.select(keep)
    if eval_rows is not None:
        eval_keep, eval_skipped = readable_rows(eval_rows, progress)
        eval_rows = eval_rows.select(eval_keep) if eval_keep else None
        skipped += [dict(item, split="test") for item in eval_skipped]

    model, processor = load_model_and_processor(config.model, dtype=weights_dtype(config), for_training=True)
    model = prepare_model(config, model)
    trainable, total = count_parameters(model)
    log.info("trainable parameters: %d of %d (%.2f %%)", trainable, total, 100.0 * trainable / max(total, 1))
    log.info("parameter dtypes: %s", parameter_dtypes(model))

    encoder = SampleEncoder(processor, config.video, family_of(model.config))
    first = encoder.encode(rows[0]["messages"])
    video_tokens = video_token_count(processor, first["input_ids"])
    log.info("first sample: %s", layout_summary(processor, first))
    log.debug("first sample text: %r", processor.tokenizer.decode(first["input_ids"][0]))

    pad_id = processor.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = processor.tokenizer.eos_token_id
    collator = VideoChatCollator(pad_token_id=pad_id)
    line_break_id = None
    if config.first_line_weight != 1.0:
        try:
            line_break_id = line_break_token_id(processor.tokenizer)
        except ValueError as err:
            raise PipelineError(f"--first-line-weight: {err}") from None
    losses: list[float] = []
    trainer = answer_only_trainer_class(config.first_line_weight, line_break_id)(
        model=model,
        args=args,
        train_dataset=VideoChatDataset(rows, encoder),
        eval_dataset=VideoChatDataset(eval_rows, encoder) if eval_rows is not None else None,
        data_collator=collator,
        callbacks=[_progress_callback(progress, losses), _settings_callback(config)],
    )
    trainer.remove_callback(PrinterCallback)
    return TrainingRun(
        config, trainer, processor, encoder, collator, resume, len(rows), skipped, video_tokens, losses, started
    )


def finish(prepared: TrainingRun, train_output: Any, seconds: float) -> TrainResult:
    """Evaluate (with --eval) and save the adapter/weights, processor, config and summary."""
    config, trainer = prepared.config, prepared.trainer
    eval_loss = None
    if trainer.eval_dataset is not None:
        eval_loss = float(trainer.evaluate()["eval_loss"])
    skipped = list(prepared.skipped)
    if prepared.collator.skipped:
        log.warning("%d sample(s) skipped during training: unreadable video", prepared.collator.skipped)
        skipped.append({"id": "(during training)", "reason": f"{prepared.collator.skipped} unreadable at decode time"})
    trainer.save_model(config.output_dir)
    trainable, total = count_parameters(trainer.model)
    result = TrainResult(
        output_dir=str(config.output_dir),
        global_step=int(trainer.state.global_step),
        train_loss=float(train_output.training_loss) if train_output.training_loss is not None else None,
        losses=list(prepared.losses),
        eval_loss=eval_loss,
        train_samples=prepared.train_samples,
        skipped_samples=skipped,
        video_tokens_per_sample=prepared.video_tokens,
        trainable_parameters=trainable,
        total_parameters=total,
        parameter_dtypes=parameter_dtypes(trainer.model),
        peak_gpu_memory_gb=peak_gpu_memory_gb(),
        seconds=seconds,
    )
    if trainer.is_world_process_zero():
        out = Path(config.output_dir)
        prepared.processor.save_pretrained(str(out))
        write_serving_template(prepared.processor, out, prepared.encoder.family)
        write_json(out / CONFIG_FILE, config.to_json())
        write_json(out / SUMMARY_FILE, asdict(result))
        follow_umask(out, since=prepared.started)
        log.info("saved %s to %s", "adapter" if config.lora.enable else "weights", out)
    return result


def run(config: TrainConfig, progress: ProgressSink | None = None) -> TrainResult:
    """Train per `config`; save the adapter (LoRA) or weights (full) + processor + config to `config.output_dir`.

    Raises:
        PipelineError: bad dataset/columns, unloadable model, output dir holding another run, no readable sample.
    """
    prepared = prepare(config, progress)
    t0 = time.perf_counter()
    output = prepared.trainer.train(resume_from_checkpoint=prepared.resume)
    return finish(prepared, output, time.perf_counter() - t0)


__all__ = [
    "CONFIG_FILE",
    "SUMMARY_FILE",
    "TrainResult",
    "TrainingRun",
    "finish",
    "load_rows",
    "prepare",
    "run",
]
