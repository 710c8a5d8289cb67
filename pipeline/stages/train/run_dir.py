"""A training run's output directory: whether it holds a run, whether a run may write there (refused unless resuming
or overwriting), and which checkpoint a resume continues from (the newest complete one)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.permissions import check_writable
from pipeline.stages.train.config import CONFIG_FILE, TrainConfig

log = logging.getLogger(__name__)

# Files whose presence means a directory already holds a training run.
RUN_MARKERS = (CONFIG_FILE, "trainer_state.json", "adapter_config.json", "model.safetensors", "training_args.bin")


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def holds_run(path: Path) -> bool:
    """True if `path` holds files of a training run (config, state, weights or checkpoints)."""
    if not path.is_dir():
        return False
    return any((path / m).exists() for m in RUN_MARKERS) or any(path.glob("checkpoint-*"))


def check_output_dir(config: TrainConfig) -> str | None:
    """Refuse an output dir holding another run unless resuming or overwriting; return the checkpoint to resume.

    Raises:
        PipelineError: the directory cannot be written, holds a run and neither flag is given, or the checkpoint is
            missing.
    """
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--output-dir {out}: exists and is not a directory")
    check_writable(out)
    resume = config.resume_from_checkpoint
    if resume is not None:
        if str(resume).lower() in ("last", "true", "latest"):
            last = last_complete_checkpoint(out)
            if last is None:
                raise PipelineError(f"--resume-from-checkpoint last: no complete checkpoint-* in {out}")
        else:
            last = Path(resume)
            if not last.is_dir():
                raise PipelineError(f"--resume-from-checkpoint {resume}: not a directory")
            missing = checkpoint_missing(last)
            if missing:
                raise PipelineError(f"--resume-from-checkpoint {resume}: incomplete checkpoint (no {missing})")
        log.info("resuming from %s (step %d)", last, _checkpoint_step(last))
        return str(last)
    if holds_run(out):
        if not config.overwrite:
            raise PipelineError(
                f"--output-dir {out}: holds another training run (pass --overwrite to replace it, "
                "or --resume-from-checkpoint last to continue it)"
            )
        if is_main_process():
            for child in out.iterdir():
                if child.name.startswith("checkpoint-") or child.name in RUN_MARKERS or child.name == "runs":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
    return None


# What a checkpoint needs to be resumed from: the Trainer's state (written last) and the weights (a LoRA adapter,
# full weights, or a DeepSpeed global_step* directory).
_CHECKPOINT_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors", "pytorch_model.bin")
_CHECKPOINT_WEIGHTS += ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def checkpoint_missing(path: Path) -> str | None:
    """What a checkpoint directory lacks to be resumed from (one phrase), or None when it is complete."""
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "readable trainer_state.json"
    if not any((path / name).is_file() for name in _CHECKPOINT_WEIGHTS) and not any(path.glob("global_step*")):
        return "weights"
    return None


def _checkpoint_step(path: Path) -> int:
    return int(json.loads((path / "trainer_state.json").read_text(encoding="utf-8")).get("global_step", 0))


def last_complete_checkpoint(out: Path) -> Path | None:
    """The newest `checkpoint-N` of `out` that can be resumed from; newer incomplete ones are logged and passed over
    (an interrupted save leaves one)."""
    if not out.is_dir():
        return None
    numbered = [(int(p.name[11:]), p) for p in out.glob("checkpoint-*") if p.name[11:].isdigit() and p.is_dir()]
    for _, path in sorted(numbered, reverse=True):
        missing = checkpoint_missing(path)
        if missing is None:
            return path
        log.warning("%s is incomplete (no %s): passed over for an older checkpoint", path, missing)
    return None


__all__ = ["RUN_MARKERS", "check_output_dir", "checkpoint_missing", "holds_run", "last_complete_checkpoint"]
