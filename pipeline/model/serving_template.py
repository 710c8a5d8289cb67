"""The chat template a serving engine needs to build the prompts training built (`serving_template.jinja`).

Training renders a Qwen3-VL / Qwen3.5 prompt with the template's `<|vision_start|><|video_pad|><|vision_end|>`
collapsed to the bare pad, because the processor writes its own per-frame `<|vision_start|>...<|vision_end|>`
groups (`pipeline.model.collator`). A server renders with the template it is given and keeps the outer pair: two
more prompt tokens than training (vLLM 0.32: 99 against 97 on a 4-frame clip), and answers that diverge. The
serving template is the checkpoint's own with that wrapper removed; families that keep the wrapper (Qwen2.5-VL)
or have none (InternVL) get the checkpoint's template unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.model.families import Family, family_of_processor

SERVING_TEMPLATE_FILE = "serving_template.jinja"
"""Written by `train` and `merge-lora` into every run directory; `serve-model` hands it to the engine."""


def serving_chat_template(processor: Any, family: Family | None = None) -> str | None:
    """The processor's chat template with the family's outer video wrapper removed; None when it has no template."""
    template = getattr(processor, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        return None
    family = family or family_of_processor(processor)
    if family.collapse_video_wrapper:
        wrapped = f"{processor.vision_start_token}{processor.video_token}{processor.vision_end_token}"
        template = template.replace(wrapped, processor.video_token)
    return template


def write_serving_template(processor: Any, directory: str | Path, family: Family | None = None) -> Path | None:
    """Write `serving_chat_template` to `directory/serving_template.jinja`; returns the path (None: no template)."""
    from pipeline.core.atomic import write_text

    template = serving_chat_template(processor, family)
    if template is None:
        return None
    path = Path(directory) / SERVING_TEMPLATE_FILE
    write_text(path, template)
    return path


__all__ = ["SERVING_TEMPLATE_FILE", "serving_chat_template", "write_serving_template"]
