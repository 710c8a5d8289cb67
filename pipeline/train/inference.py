"""Batched greedy generation of answers from conversation rows (the evaluator's model path)."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.progress import NullProgress, ProgressSink
from pipeline.train.collator import SampleEncoder, pad_batch
from pipeline.train.video_input import VideoReadError, VideoSettings

log = logging.getLogger(__name__)


def generate_answers(
    model: Any,
    processor: Any,
    rows: Any,
    video_settings: VideoSettings | None = None,
    max_new_tokens: int = 512,
    batch_size: int = 4,
    progress: ProgressSink | None = None,
) -> list[str]:
    """The model's answer text for each row (greedy, left-padded batches), in row order.

    Args:
        rows: a sequence of rows with `messages` (absolute video paths); a trailing assistant turn is ignored.
        max_new_tokens: generation budget per answer (30 answer pairs cost about 300-360 Qwen tokens).

    Returns:
        One string per row, special tokens removed; "" for a row whose video cannot be read (logged).
    """
    import torch

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    progress = progress or NullProgress()
    encoder = SampleEncoder(processor, video_settings or VideoSettings())
    tokenizer = processor.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = sorted({encoder.end_id, *([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])})
    device = next(model.parameters()).device
    answers = [""] * len(rows)
    progress.start("generating", len(rows))
    for start in range(0, len(rows), batch_size):
        encoded, positions = [], []
        for i in range(start, min(start + batch_size, len(rows))):
            row = rows[i]
            try:
                encoded.append(encoder.encode(row["messages"], for_generation=True))
                positions.append(i)
            except VideoReadError as err:
                log.warning("no answer for row %s: %s", row.get("id", i), err)
        if encoded:
            batch = pad_batch(encoded, pad_id, padding_side="left")
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with torch.inference_mode():
                out = model.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id, eos_token_id=eos_ids
                )
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text in zip(positions, texts, strict=True):
                answers[i] = text.strip()
        progress.advance(min(batch_size, len(rows) - start))
    progress.finish()
    return answers


__all__ = ["generate_answers"]
