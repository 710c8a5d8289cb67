"""Turn one conversation row into model inputs (training: with labels; generation: prompt only) and batch them.

What differs per family (frame counts, the video wrapper, the end of turn, template variables) comes from
`pipeline.model.families`. InternVL's template writes `<video>`, which its processor expands into per-frame
`FrameN: <img><IMG_CONTEXT>*256</img>` lines (one 448x448 tile per frame in the published checkpoints).

Qwen layout (checked against the reference Qwen3-VL processor of transformers 4.57 and Qwen's own `qwen-vl-utils`
flow): Qwen3-VL writes each video as per-frame groups `<t seconds><|vision_start|><|video_pad|>*n<|vision_end|>`
that *replace* the template's `<|vision_start|><|video_pad|><|vision_end|>`. transformers 5.24's processor expands
only `<|video_pad|>`, which would leave an extra outer `<|vision_start|>`/`<|vision_end|>` pair around the groups,
so for processors with timestamped frame groups we collapse the template's wrapper to the bare pad first.
Qwen2.5-VL keeps the wrapper: `<|vision_start|><|video_pad|>*N<|vision_end|>`.

Labels: -100 everywhere except the last assistant turn's answer tokens and its end-of-turn token. The span is
found by the answer's characters in the rendered text (`answer_labels`), not by matching the generation prompt's
token ids: a thinking template's `<think>\\n` merges with the next newline into another token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pipeline.contracts.dataset_reader import clean_messages
from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import PipelineError, VideoError
from pipeline.model.families import Family, family_of_processor
from pipeline.model.loss import IGNORE_INDEX
from pipeline.model.video_input import load_video, processor_kwargs

log = logging.getLogger(__name__)

# Per-token keys (padded along the sequence); every other tensor key is concatenated along dim 0.
SEQUENCE_KEYS = ("input_ids", "attention_mask", "labels", "mm_token_type_ids", "token_type_ids")


def video_paths(messages: list[dict[str, Any]]) -> list[str]:
    """Paths of the video items, in order (one per camera); the `video: None` keys of other items (datasets adds
    them) are not videos."""
    return [
        item["video"]
        for message in messages
        if isinstance(message.get("content"), list)
        for item in message["content"]
        if item.get("video") is not None
    ]


def uses_frame_groups(processor: Any) -> bool:
    """True for processors that expand a video into timestamped per-frame vision groups (Qwen3-VL family)."""
    return hasattr(processor, "_calculate_timestamps") and hasattr(processor, "vision_start_token")


def end_of_turn_id(tokenizer: Any, token: str = "<|im_end|>") -> int:
    """Id of the token that ends an assistant turn (the family's `end_of_turn`; else the tokenizer's eos)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
        return token_id
    if tokenizer.eos_token_id is None:
        raise PipelineError(f"the tokenizer has neither {token} nor an eos token: cannot mark the answer's end")
    return tokenizer.eos_token_id


def answer_text(messages: list[dict[str, Any]]) -> str:
    """Text of the last message (the assistant's answer): its string content or its text items joined."""
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    return "".join(item["text"] for item in content or [] if isinstance(item, dict) and item.get("text"))


def answer_labels(input_ids: list[int], text: str, answer: str, tokenizer: Any, end_id: int) -> list[int]:
    """Labels for one sequence: the tokens of `answer` and the end-of-turn token right after it; -100 elsewhere.

    The answer is located by characters: its last occurrence in `text` (the rendered chat template, before the
    processor expands the vision pads), mapped to tokens with the tokenizer's offsets. So any template that renders
    the answer verbatim works, whatever its generation prompt (`<|im_start|>assistant\n`, a thinking block
    `...<think>\n`) tokenizes into. The positions are counted from the end: the vision pads expand before the
    answer, and BPE never merges across special tokens, so `text`'s last tokens are `input_ids`' last tokens
    (checked).

    Raises:
        PipelineError: the answer is not in the text, is not followed by the end-of-turn token (truncated?), or the
            tail of `input_ids` is not the text's (never a silent wrong label).
    """
    char_start = text.rfind(answer) if answer else -1
    if char_start < 0:
        raise PipelineError("the chat template does not render the assistant answer verbatim: cannot label it")
    char_end = char_start + len(answer)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoding["input_ids"]), list(encoding["offset_mapping"])
    inside = [i for i, (a, b) in enumerate(offsets) if b > char_start and a < char_end]
    first, last = inside[0], inside[-1] + 1
    if last >= len(ids) or ids[last] != end_id:
        raise PipelineError("the assistant answer has no end-of-turn token (truncated?)")
    tail = len(ids) - first
    if tail > len(input_ids) or input_ids[-tail:] != ids[first:]:
        raise PipelineError("the processed sample does not end with the rendered answer: cannot label it")
    labels = [IGNORE_INDEX] * len(input_ids)
    begin = len(input_ids) - tail
    labels[begin : begin + last - first + 1] = input_ids[begin : begin + last - first + 1]
    return labels


@dataclass
class SampleEncoder:
    """Encodes conversation rows with one processor and one video setting."""

    processor: Any  # a supported family's processor (`families.FAMILIES`)
    video_settings: VideoSettings = field(default_factory=VideoSettings)  # frame sampling and pixel budget
    family: Family | None = None  # the model's family (`families.family_of(model.config)`); None: the processor's

    def __post_init__(self) -> None:
        if self.family is None:
            self.family = family_of_processor(self.processor)
        self.end_id = end_of_turn_id(self.processor.tokenizer, self.family.end_of_turn)

    def render(self, messages: list[dict[str, Any]], for_generation: bool) -> str:
        """Chat-template text (with the family's template variables), the Qwen3-VL wrapper collapsed (see the
        module docstring)."""
        text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=for_generation, **self.family.template_kwargs
        )
        if self.family.collapse_video_wrapper:
            p = self.processor
            text = text.replace(f"{p.vision_start_token}{p.video_token}{p.vision_end_token}", p.video_token)
        return text

    def labels(self, input_ids: list[int], text: str, messages: list[dict[str, Any]]) -> list[int]:
        """`answer_labels` of a processed training row whose rendered text is `text`."""
        return answer_labels(input_ids, text, answer_text(messages), self.processor.tokenizer, self.end_id)

    def encode(self, messages: list[dict[str, Any]], for_generation: bool = False) -> dict[str, Any]:
        """Model inputs for one row (batch dimension 1, torch tensors).

        Training (`for_generation=False`): the whole conversation, with `labels`. Generation: the conversation up to
        the last user turn plus the generation prompt, without labels. Several videos (one per camera) go to the
        processor in the conversation's order, each sampled from its own decoded clip.

        Raises:
            VideoError: a video is missing or unreadable, or the videos sample different frame counts.
            PipelineError: no assistant answer to learn from (training).
        """
        messages = clean_messages(messages)
        if for_generation and messages and messages[-1]["role"] == "assistant":
            messages = messages[:-1]
        if not for_generation and (not messages or messages[-1]["role"] != "assistant"):
            raise PipelineError("a training row must end with the assistant's answer")
        videos, metadata = [], []
        for path in video_paths(messages):
            frames, meta = load_video(path, self.video_settings, self.family.frame_multiple)
            videos.append(frames)
            metadata.append(meta)
        text = self.render(messages, for_generation)
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if videos:
            # One budget for every video of the call: Qwen3-VL's scales with the frame count, which must agree.
            if len({len(v) for v in videos}) > 1:
                counts = ", ".join(f"{p}: {len(v)}" for p, v in zip(video_paths(messages), videos, strict=True))
                raise VideoError(f"the videos of one sample give different frame counts ({counts})")
            video_kwargs = processor_kwargs(self.video_settings, self.processor.video_processor, len(videos[0]))
            kwargs |= {"videos": videos, "video_metadata": metadata, **video_kwargs}
        inputs = dict(self.processor(**kwargs))
        if not for_generation:
            import torch

            inputs["labels"] = torch.tensor([self.labels(inputs["input_ids"][0].tolist(), text, messages)])
        return inputs


def video_token_id(processor: Any) -> int:
    """Id of the token that carries one visual feature of a video (the family's `video_token`)."""
    return processor.tokenizer.convert_tokens_to_ids(family_of_processor(processor).video_token)


def video_token_count(processor: Any, input_ids: Any) -> int:
    """Number of video feature tokens (`video_token_id`) in `input_ids` (any shape)."""
    return int((input_ids == video_token_id(processor)).sum())


def layout_summary(processor: Any, inputs: dict[str, Any]) -> str:
    """One line describing a tokenized sample: visual tokens of the total, the video grid, the frames' timestamp
    text (Qwen3-VL's `<t seconds>`; "none" for families without), answer tokens carrying loss."""
    import re

    ids = inputs["input_ids"]
    parts = [f"{video_token_count(processor, ids)} visual of {ids.shape[-1]} tokens"]
    if "video_grid_thw" in inputs:
        parts.append(f"video grid (t,h,w) {inputs['video_grid_thw'].tolist()}")
    stamps = re.findall(r"<[0-9.]+ seconds>", processor.tokenizer.decode(ids.reshape(-1).tolist()))
    parts.append(f"timestamps {' '.join(stamps) if stamps else 'none'}")
    if "labels" in inputs:
        parts.append(f"{int((inputs['labels'] != IGNORE_INDEX).sum())} answer tokens carry loss")
    return ", ".join(parts)


def pad_batch(examples: list[dict[str, Any]], pad_token_id: int, padding_side: str = "right") -> dict[str, Any]:
    """Stack encoded rows: per-token keys padded to the longest (input_ids with `pad_token_id`, labels with -100,
    masks with 0) on `padding_side`; pixel values, grids and other tensors concatenated along dim 0."""
    import torch

    if not examples:
        raise ValueError("empty batch")
    longest = max(e["input_ids"].shape[-1] for e in examples)
    batch: dict[str, Any] = {}
    for key in examples[0]:
        values = [e[key] for e in examples]
        if key in SEQUENCE_KEYS:
            fill = pad_token_id if key == "input_ids" else IGNORE_INDEX if key == "labels" else 0
            rows = []
            for v in values:
                v = v.reshape(-1)
                pad = torch.full((longest - v.shape[0],), fill, dtype=v.dtype)
                rows.append(torch.cat([v, pad] if padding_side == "right" else [pad, v]))
            batch[key] = torch.stack(rows)
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.cat(values, dim=0)
        elif isinstance(values[0], list):
            batch[key] = torch.tensor([x for v in values for x in v])
    return batch


class VideoChatDataset:
    """A torch-style dataset over conversation rows: item i = encoded row i, or None if its video fails."""

    def __init__(self, rows: Any, encoder: SampleEncoder, for_generation: bool = False) -> None:
        self.rows = rows  # a datasets.Dataset or list of dicts with `messages`
        self.encoder = encoder
        self.for_generation = for_generation

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        row = self.rows[int(index)]
        try:
            return self.encoder.encode(row["messages"], for_generation=self.for_generation)
        except VideoError as err:
            log.warning("skipping sample %s: %s", row.get("id", index), err)
            return None


@dataclass
class VideoChatCollator:
    """Trainer collator: drops samples whose video failed (counted in `skipped`), pads the rest."""

    pad_token_id: int  # id used to pad input_ids
    padding_side: str = "right"  # "right" for training, "left" for generation
    skipped: int = 0  # samples dropped because their video could not be read (this process only)

    def __call__(self, items: list[dict[str, Any] | None]) -> dict[str, Any]:
        kept = [item for item in items if item is not None]
        self.skipped += len(items) - len(kept)
        if not kept:
            raise PipelineError(f"every sample of a batch of {len(items)} has an unreadable video")
        return pad_batch(kept, self.pad_token_id, self.padding_side)


__all__ = [
    "IGNORE_INDEX",
    "SampleEncoder",
    "VideoChatCollator",
    "VideoChatDataset",
    "answer_labels",
    "answer_text",
    "end_of_turn_id",
    "layout_summary",
    "pad_batch",
    "uses_frame_groups",
    "video_paths",
    "video_token_count",
    "video_token_id",
]
