"""Merge a LoRA adapter into its base model and save full weights with the processor (loads without peft)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.options import overwrite_setting, setting
from pipeline.model.modeling import load_model_and_processor
from pipeline.stages.train.config import CONFIG_FILE

log = logging.getLogger(__name__)


@dataclass
class MergeConfig:
    """What to merge and where."""

    base: str = setting(help="Base model: Hub id or local dir.")
    # adapter_config.json + adapter weights
    adapter: str = setting(help="LoRA training output dir.")
    output_dir: str = setting(help="Where the merged model goes.")
    dtype: str | None = setting(None, help="float32|bfloat16|float16.", show_default="the checkpoint's")
    overwrite: bool = overwrite_setting()

    def __post_init__(self) -> None:
        if not (Path(self.adapter) / "adapter_config.json").is_file():
            raise PipelineError(f"--adapter {self.adapter}: no adapter_config.json (not a LoRA training output)")
        out = Path(self.output_dir)
        if out.exists() and any(out.iterdir()) and not self.overwrite:
            raise PipelineError(f"--output-dir {out}: exists and is not empty (pass --overwrite to replace it)")


def run(config: MergeConfig) -> Path:
    """Write base + adapter merged (`merge_and_unload`) to `config.output_dir`; returns it.

    The adapter's training settings (`train_config.json`, which holds the video sampling) are copied along, so the
    merged model is evaluated with the frames it was trained on.
    """
    model, processor = load_model_and_processor(config.base, adapter=config.adapter, dtype=config.dtype)
    merged = model.merge_and_unload()
    out = Path(config.output_dir)
    with atomic_dir(out, overwrite=True) as tmp:
        merged.save_pretrained(str(tmp))
        processor.save_pretrained(str(tmp))
        write_json(tmp / "merge_config.json", asdict(config))
        settings = Path(config.adapter) / CONFIG_FILE
        if settings.is_file():
            shutil.copyfile(settings, tmp / CONFIG_FILE)
        else:
            log.warning("%s: no %s; the merged model carries no training settings", config.adapter, CONFIG_FILE)
    log.info("merged %s + %s into %s", config.base, config.adapter, out)
    return out


__all__ = ["MergeConfig", "run"]
