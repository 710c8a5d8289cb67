"""Token layout and labels of real processed samples, against layouts written out by hand from the reference.

Reference layouts: Qwen3-VL (transformers 4.57 processor, qwen-vl-utils) replaces the template's
`<|vision_start|><|video_pad|><|vision_end|>` with per-frame groups `<t seconds><|vision_start|>pads<|vision_end|>`;
Qwen2.5-VL keeps one `<|vision_start|>pads<|vision_end|>`.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoProcessor

from pipeline.contracts.messages import DEFAULT_SYSTEM_PROMPT
from pipeline.core.errors import PipelineError
from pipeline.model.collator import (
    IGNORE_INDEX,
    SampleEncoder,
    VideoChatCollator,
    VideoChatDataset,
    answer_labels,
    pad_batch,
)
from pipeline.stages.train.trainer import load_rows

VIDEO_START, VIDEO_END, VIDEO_PAD, IM_START, IM_END = 151652, 151653, 151656, 151644, 151645


@pytest.fixture(scope="module")
def rows(train_dataset_dir):
    return load_rows(train_dataset_dir, "train")


def expected_video_text(family: str) -> str:
    """The video part of the prompt for a 1-s 128x96 30 fps clip sampled at 4 frames (0, 10, 19, 29)."""
    pad = "<|video_pad|>"
    if family == "qwen3_vl":
        # 16-px patches: 96x128 -> 6x8 patches, 2x2 merge -> 12 tokens per temporal pair of frames.
        # Pair timestamps: (0 + 10) / 2 / 30 = 0.17 s and (19 + 29) / 2 / 30 = 0.8 s.
        group = f"<|vision_start|>{pad * 12}<|vision_end|>"
        return f"<0.2 seconds>{group}<0.8 seconds>{group}"
    # 14-px patches on 84x140 (96 and 128 rounded to multiples of 28): 6x10 patches -> 15 tokens per pair, 2 pairs.
    return f"<|vision_start|>{pad * 30}<|vision_end|>"


def prompt_text(row, family: str) -> str:
    user_text = row["messages"][1]["content"][1]["text"]
    return (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{expected_video_text(family)}{user_text}<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_expanded_ids_match_the_reference_layout(qwen_processors, rows, family):
    processor = qwen_processors[family]
    row = rows[0]
    answer = row["messages"][2]["content"][0]["text"]
    inputs = SampleEncoder(processor).encode(row["messages"])
    ids = inputs["input_ids"][0].tolist()
    expected = processor.tokenizer.encode(prompt_text(row, family) + answer + "<|im_end|>\n", add_special_tokens=False)
    assert ids == expected
    grid = {"qwen3_vl": [[2, 6, 8]], "qwen2_5_vl": [[2, 6, 10]]}[family]
    assert inputs["video_grid_thw"].tolist() == grid
    assert ids.count(VIDEO_PAD) == grid[0][0] * grid[0][1] * grid[0][2] // 4
    assert ids.count(VIDEO_START) == ids.count(VIDEO_END) == (2 if family == "qwen3_vl" else 1)
    if family == "qwen2_5_vl":
        # 4 frames over 1 s: two frames per temporal patch -> 0.5 s per grid step.
        assert inputs["second_per_grid_ts"].tolist() == pytest.approx([0.5])


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_label_mask_token_by_token(qwen_processors, rows, family):
    processor = qwen_processors[family]
    row = rows[1]
    answer = row["messages"][2]["content"][0]["text"]
    inputs = SampleEncoder(processor).encode(row["messages"])
    ids = inputs["input_ids"][0].tolist()
    labels = inputs["labels"][0].tolist()
    start = len(processor.tokenizer.encode(prompt_text(row, family), add_special_tokens=False))
    answer_ids = processor.tokenizer.encode(answer, add_special_tokens=False)
    end = start + len(answer_ids)  # index of the answer's <|im_end|>
    assert ids[start:end] == answer_ids and ids[end] == IM_END
    for i, (token, label) in enumerate(zip(ids, labels, strict=True)):
        if start <= i <= end:
            assert label == token, f"position {i}: answer token must carry loss"
        else:
            assert label == IGNORE_INDEX, f"position {i} ({processor.tokenizer.decode([token])!r}) must be -100"
    assert end == len(ids) - 2  # only the newline after <|im_end|> follows
    assert processor.tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == answer + "<|im_end|>"


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_generation_input_stops_at_the_assistant_header(qwen_processors, rows, family):
    processor = qwen_processors[family]
    inputs = SampleEncoder(processor).encode(rows[0]["messages"], for_generation=True)
    assert "labels" not in inputs
    expected = processor.tokenizer.encode(prompt_text(rows[0], family), add_special_tokens=False)
    assert inputs["input_ids"][0].tolist() == expected


def test_answer_labels_refuse_unlabelable_sequences(qwen_processors):
    tokenizer = qwen_processors["qwen3_vl"].tokenizer
    text = "<|im_start|>user\n<|video_pad|>go<|im_end|>\n<|im_start|>assistant\n12.5,0.01<|im_end|>\n"
    ids = tokenizer.encode(text, add_special_tokens=False)
    expanded = ids[:2] + [VIDEO_PAD] * 3 + ids[3:]  # the processor's expansion of the pad
    labels = answer_labels(expanded, text, "12.5,0.01", tokenizer, IM_END)
    assert tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == "12.5,0.01<|im_end|>"
    assert labels[-1] == IGNORE_INDEX and labels[: len(expanded) - 11] == [IGNORE_INDEX] * (len(expanded) - 11)
    with pytest.raises(PipelineError, match="verbatim"):
        answer_labels(expanded, text, "13.0,0.00", tokenizer, IM_END)
    truncated = text[: text.rindex("<|im_end|>")]
    with pytest.raises(PipelineError, match="end-of-turn"):
        answer_labels(tokenizer.encode(truncated, add_special_tokens=False), truncated, "12.5,0.01", tokenizer, IM_END)
    with pytest.raises(PipelineError, match="does not end with"):
        answer_labels(expanded[:-4] + [7, 7, 7, 7], text, "12.5,0.01", tokenizer, IM_END)


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_batch(side):
    a = {
        "input_ids": torch.tensor([[1, 2, 3]]),
        "labels": torch.tensor([[-100, 2, 3]]),
        "pixel_values_videos": torch.ones(4, 2),
    }
    b = {"input_ids": torch.tensor([[7]]), "labels": torch.tensor([[7]]), "pixel_values_videos": torch.zeros(2, 2)}
    batch = pad_batch([a, b], pad_token_id=0, padding_side=side)
    if side == "right":
        assert batch["input_ids"].tolist() == [[1, 2, 3], [7, 0, 0]]
        assert batch["labels"].tolist() == [[-100, 2, 3], [7, -100, -100]]
    else:
        assert batch["input_ids"].tolist() == [[1, 2, 3], [0, 0, 7]]
        assert batch["labels"].tolist() == [[-100, 2, 3], [-100, -100, 7]]
    assert batch["pixel_values_videos"].shape == (6, 2)


def test_missing_video_is_skipped_and_counted(qwen_processors, rows, tmp_path):
    broken = dict(rows[0])
    messages = [dict(m) for m in broken["messages"]]
    messages[1] = {
        "role": "user",
        "content": [{"type": "video", "video": str(tmp_path / "gone.mp4")}, messages[1]["content"][1]],
    }
    broken["messages"] = messages
    dataset = VideoChatDataset([rows[0], broken], SampleEncoder(qwen_processors["qwen3_vl"]))
    items = [dataset[0], dataset[1]]
    assert items[1] is None
    collator = VideoChatCollator(pad_token_id=151643)
    batch = collator(items)
    assert batch["input_ids"].shape[0] == 1 and collator.skipped == 1
    with pytest.raises(PipelineError, match="unreadable video"):
        collator([None])
    assert collator.skipped == 2


def test_thinking_template_labels_exactly_the_answer(tiny_qwen3_vl_thinking, rows):
    thinking_processor = AutoProcessor.from_pretrained(tiny_qwen3_vl_thinking)
    row = rows[0]
    answer = row["messages"][2]["content"][0]["text"]
    encoder = SampleEncoder(thinking_processor)
    assert encoder.render(row["messages"], for_generation=True).endswith("<|im_start|>assistant\n<think>\n")
    inputs = encoder.encode(row["messages"])
    ids, labels = inputs["input_ids"][0].tolist(), inputs["labels"][0].tolist()
    tokenizer = thinking_processor.tokenizer
    # The trap: the prompt's "<think>\n" is not a token prefix of the training text ("\n\n" is one token there).
    header = tokenizer.encode("<|im_start|>assistant\n<think>\n", add_special_tokens=False)
    assert not any(ids[i : i + len(header)] == header for i in range(len(ids)))
    assert tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == answer + "<|im_end|>"
    labelled = [i for i, t in enumerate(labels) if t != IGNORE_INDEX]
    assert labelled == list(range(labelled[0], labelled[-1] + 1)) and labelled[-1] == len(ids) - 2
    assert tokenizer.decode(ids[: labelled[0]]).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.parametrize(
    ("family", "visual", "total", "stamps"),
    [("qwen3_vl", 224, 749, "<0.2 seconds> <0.8 seconds>"), ("qwen2_5_vl", 288, 799, "none")],
)
def test_layout_of_a_real_segment_with_thirty_targets(qwen_processors, tmp_path, family, visual, total, stamps):
    """What a real run gets per 1-s 448x252 30-fps segment (the size `pipeline segment` writes), 30 targets."""
    import numpy as np

    from pipeline.contracts.answer import format_answer
    from pipeline.contracts.messages import build_messages, default_prompt
    from pipeline.model.collator import layout_summary
    from tests.fixtures.model_fixtures import write_test_clip

    clip = write_test_clip(tmp_path / "segment.mp4", seed=0, width=448, height=252)
    answer = format_answer(np.linspace(12.0, 13.5, 30), np.linspace(-0.004, 0.004, 30))  # 43-49 km/h, gentle curves
    messages = build_messages(str(clip), answer, DEFAULT_SYSTEM_PROMPT, default_prompt(30))
    line = layout_summary(qwen_processors[family], SampleEncoder(qwen_processors[family]).encode(messages))
    print(family, line)
    assert line.startswith(f"{visual} visual of {total} tokens, ")
    assert line.endswith(f", timestamps {stamps}, 330 answer tokens carry loss")
