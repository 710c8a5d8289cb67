"""Batched greedy generation of answers from conversation rows (the evaluator's model path).

Decoding is set explicitly, never inherited: a checkpoint's `generation_config.json` may ask for sampling and, worse,
a `repetition_penalty` (Qwen2.5-VL's published one is 1.05), which still applies under greedy decoding and
penalises every digit, comma and end-of-turn token already written: wrong numbers with no error. transformers fills
each setting left `None` from the checkpoint's config, so every setting that shapes greedy logits is given a value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import PipelineError, VideoError
from pipeline.core.options import setting
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.model.families import family_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated (the options of `pipeline evaluate` that shape `generate`; decoding itself is
    always greedy, `GREEDY_SETTINGS`)."""

    # 30 answer pairs cost ~300-360 Qwen tokens (pipeline.contracts.answer), so 512 leaves room for stray text.
    max_new_tokens: int = setting(512, help="Generation limit per answer.")

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise PipelineError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")


# Greedy decoding with every logits-shaping setting neutral. temperature/top_p/top_k are transformers' "unset"
# values (they apply only when sampling); set here so the checkpoint's sampling values are not filled in.
GREEDY_SETTINGS: dict[str, Any] = {
    "do_sample": False,
    "num_beams": 1,
    "num_return_sequences": 1,
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "length_penalty": 1.0,
    "min_length": 0,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 50,
}
# Generation settings a checkpoint may carry that identify tokens or choose outputs rather than shape decoding.
_NEUTRAL_SETTINGS = (
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "decoder_start_token_id",
    "max_length",
    "max_new_tokens",
    "use_cache",
    "cache_implementation",
    "output_attentions",
    "output_hidden_states",
    "output_scores",
    "output_logits",
    "return_dict_in_generate",
)


def greedy_generation_config(processor: Any, max_new_tokens: int, checkpoint_config: Any = None) -> Any:
    """The explicit `GenerationConfig` answers are generated with: greedy, no penalty, the end-of-turn id (and the
    tokenizer's eos) as eos, the tokenizer's pad id (else its eos) as pad.

    `checkpoint_config` (the model's own `generation_config`) is only read, to log which of its settings are
    overridden, and to warn about a decoding setting of it that this config does not pin.
    """
    from transformers import GenerationConfig

    from pipeline.model.collator import end_of_turn_id
    from pipeline.model.families import family_of_processor

    tokenizer = processor.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    end_id = end_of_turn_id(tokenizer, family_of_processor(processor).end_of_turn)
    eos_ids = sorted({end_id, *([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])})
    config = GenerationConfig(
        **GREEDY_SETTINGS, max_new_tokens=max_new_tokens, eos_token_id=eos_ids, pad_token_id=pad_id
    )
    if checkpoint_config is not None:
        theirs = {k: v for k, v in checkpoint_config.to_diff_dict().items() if not k.startswith("_") and v is not None}
        theirs.pop("transformers_version", None)
        overridden = {k: v for k, v in theirs.items() if k in GREEDY_SETTINGS and v != GREEDY_SETTINGS[k]}
        if overridden:
            log.info("generation: greedy; the checkpoint's %s are not used", overridden)
        unpinned = sorted(set(theirs) - set(GREEDY_SETTINGS) - set(_NEUTRAL_SETTINGS))
        if unpinned:
            log.warning("generation: the checkpoint's generation config also sets %s, which still apply", unpinned)
    return config


def generation_record(config: Any) -> dict[str, Any]:
    """The settings of a `GenerationConfig` from `greedy_generation_config`, as JSON values (for metrics.json)."""
    return {key: getattr(config, key) for key in (*GREEDY_SETTINGS, "max_new_tokens", "eos_token_id", "pad_token_id")}


def generate_answers(
    model: Any,
    processor: Any,
    rows: Any,
    video_settings: VideoSettings | None = None,
    max_new_tokens: int = 512,
    batch_size: int = 4,
    progress: ProgressSink | None = None,
    generation_config: Any = None,
) -> list[str]:
    """The model's answer text for each row (greedy, left-padded batches), in row order.

    Args:
        rows: a sequence of rows with `messages` (absolute video paths); a trailing assistant turn is ignored.
        max_new_tokens: generation budget per answer (30 answer pairs cost about 300-360 Qwen tokens).
        generation_config: decoding settings; None: `greedy_generation_config(processor, max_new_tokens)`.

    Returns:
        One string per row, special tokens removed; "" for a row whose video cannot be read (logged).
    """
    import torch

    from pipeline.model.collator import SampleEncoder, pad_batch

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    progress = progress or NullProgress()
    encoder = SampleEncoder(processor, video_settings or VideoSettings(), family_of(model.config))
    tokenizer = processor.tokenizer
    if generation_config is None:
        generation_config = greedy_generation_config(
            processor, max_new_tokens, getattr(model, "generation_config", None)
        )
    pad_id = generation_config.pad_token_id
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
            except VideoError as err:
                log.warning("no answer for row %s: %s", row.get("id", i), err)
        if encoded:
            batch = pad_batch(encoded, pad_id, padding_side="left")
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with torch.inference_mode():
                out = model.generate(**batch, generation_config=generation_config)
            new_tokens = out[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text in zip(positions, texts, strict=True):
                answers[i] = text.strip()
        progress.advance(min(batch_size, len(rows) - start))
    progress.finish()
    return answers


__all__ = [
    "GREEDY_SETTINGS",
    "GenerationSettings",
    "generate_answers",
    "generation_record",
    "greedy_generation_config",
]
