"""Merge a LoRA adapter into its base model and save full weights with the processor (loads without peft)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.core.permissions import check_writable, follow_umask
from pipeline.model.compatibility import check_adapter
from pipeline.model.modeling import load_model_and_processor
from pipeline.model.serving_template import write_serving_template
from pipeline.stages.train.config import CONFIG_FILE, MergeConfig

log = logging.getLogger(__name__)


def run(config: MergeConfig) -> Path:
    """Write base + adapter merged (`merge_and_unload`) to `config.output_dir`; returns it.

    The adapter's training settings (`train_config.json`, which holds the video sampling) are copied along, so the
    merged model is evaluated with the frames it was trained on. An adapter made for another base, or an output dir
    that cannot be written, is refused before the model is loaded.

    Raises:
        PipelineError: the adapter does not match the base, the output dir is not writable (one line).
    """
    check_adapter(config.adapter, config.base, base_flag="--base")
    check_writable(Path(config.output_dir))
    model, processor = load_model_and_processor(config.base, adapter=config.adapter, dtype=config.dtype)
    merged = model.merge_and_unload()
    out = Path(config.output_dir)
    with atomic_dir(out, overwrite=True) as tmp:
        merged.save_pretrained(str(tmp))
        processor.save_pretrained(str(tmp))
        write_serving_template(processor, tmp)
        write_json(tmp / "merge_config.json", config.to_json())
        settings = Path(config.adapter) / CONFIG_FILE
        if settings.is_file():
            shutil.copyfile(settings, tmp / CONFIG_FILE)
        else:
            log.warning("%s: no %s; the merged model carries no training settings", config.adapter, CONFIG_FILE)
        follow_umask(tmp)
    log.info("merged %s + %s into %s", config.base, config.adapter, out)
    return out


__all__ = ["MergeConfig", "run"]
