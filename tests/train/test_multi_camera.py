"""Several cameras per sample: the processor gets one video per camera in the conversation's order, training and
in-process evaluation see the same tokens and pixels, a training step runs, and Alpamayo-style 4-frame clips work
with every family's processor."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from pipeline.contracts.messages import DEFAULT_SYSTEM_PROMPT, build_messages, default_prompt
from pipeline.core.errors import VideoError
from pipeline.model.collator import SampleEncoder, VideoChatCollator, VideoChatDataset
from pipeline.model.inference import generate_answers
from tests.fixtures.model_fixtures import write_test_clip

CAMERAS = ("camera_front_wide_120fov", "camera_cross_left_120fov")
PROMPT = default_prompt(5)
ANSWER = "5.00,0.00\n5.10,-1.00"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two cameras' 1-s 30 fps clips (different content), and two cameras' 4-frame clips at 0.1 s spacing."""
    root = tmp_path_factory.mktemp("cameras")
    return {
        "second": [str(write_test_clip(root / f"s{k}.mp4", seed=11 + k)) for k in range(2)],
        "four": [str(write_test_clip(root / f"f{k}.mp4", seed=21 + k, frames=4, fps=10)) for k in range(2)],
    }


def two_camera_messages(videos: list[str]) -> list[dict]:
    return build_messages(videos, ANSWER, DEFAULT_SYSTEM_PROMPT, PROMPT, cameras=CAMERAS)


def video_text(family: str) -> str:
    """One 1-s 128x96 clip sampled at 4 frames, as the processor expands it (tests/train/test_collator.py)."""
    pad = "<|video_pad|>"
    if family == "qwen3_vl":
        group = f"<|vision_start|>{pad * 12}<|vision_end|>"
        return f"<0.2 seconds>{group}<0.8 seconds>{group}"
    return f"<|vision_start|>{pad * 30}<|vision_end|>"


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_each_camera_is_named_and_its_video_expanded_in_order(qwen_processors, clips, family):
    processor = qwen_processors[family]
    encoder = SampleEncoder(processor)
    inputs = encoder.encode(two_camera_messages(clips["second"]))
    v = video_text(family)
    text = (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
        f"front wide camera:{v}\ncross left camera:{v}\n{PROMPT}<|im_end|>\n"
        f"<|im_start|>assistant\n{ANSWER}<|im_end|>\n"
    )
    assert inputs["input_ids"][0].tolist() == processor.tokenizer.encode(text, add_special_tokens=False)
    grid = [2, 6, 8] if family == "qwen3_vl" else [2, 6, 10]
    assert inputs["video_grid_thw"].tolist() == [grid, grid]
    # Camera k's pixels are exactly those of a one-camera sample of camera k: the order is the conversation's.
    alone = [encoder.encode(build_messages(p, ANSWER, DEFAULT_SYSTEM_PROMPT, PROMPT)) for p in clips["second"]]
    expected = torch.cat([a["pixel_values_videos"] for a in alone])
    assert torch.equal(inputs["pixel_values_videos"], expected)
    assert not torch.equal(alone[0]["pixel_values_videos"], alone[1]["pixel_values_videos"])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_training_and_evaluation_see_the_same_sample_and_a_step_trains(
    request, qwen_processors, clips, monkeypatch, family
):
    processor = qwen_processors[family]
    model = AutoModelForImageTextToText.from_pretrained(request.getfixturevalue(f"tiny_{family}"))
    rows = [{"id": "s0", "messages": two_camera_messages(clips["second"])}]
    pad_id = processor.tokenizer.pad_token_id
    train_batch = VideoChatCollator(pad_id)([VideoChatDataset(rows, SampleEncoder(processor))[0]])

    seen = {}

    def capture(**kwargs):
        seen.update(kwargs)
        return torch.cat([kwargs["input_ids"], torch.tensor([[151645]])], dim=1)

    monkeypatch.setattr(model, "generate", capture)
    assert generate_answers(model, processor, rows, max_new_tokens=4) == [""]
    prompt_len = seen["input_ids"].shape[1]
    assert seen["input_ids"][0].tolist() == train_batch["input_ids"][0, :prompt_len].tolist()
    assert (train_batch["labels"][0, :prompt_len] == -100).all()
    for key in ("pixel_values_videos", "video_grid_thw"):
        assert torch.equal(seen[key], train_batch[key]), key
    monkeypatch.undo()

    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.lm_head.weight.detach().clone()
    loss = model(**train_batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    assert not torch.equal(model.lm_head.weight, before)


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_four_frames_per_camera_make_two_temporal_patches(qwen_processors, clips, family):
    inputs = SampleEncoder(qwen_processors[family]).encode(two_camera_messages(clips["four"]))
    grid = [2, 6, 8] if family == "qwen3_vl" else [2, 6, 10]
    assert inputs["video_grid_thw"].tolist() == [grid, grid]
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(151656) == 2 * grid[0] * grid[1] * grid[2] // 4
    text = qwen_processors[family].tokenizer.decode(ids)
    if family == "qwen3_vl":
        # Frame pairs (0, 1) and (2, 3) at 10 fps: mean times 0.05 s and 0.25 s, written with one decimal.
        assert text.count(f"<{0.05:.1f} seconds>") == 2 and text.count(f"<{0.25:.1f} seconds>") == 2
    else:
        # Two frames per temporal patch at 10 fps: 0.2 s per grid step.
        assert inputs["second_per_grid_ts"].tolist() == pytest.approx([0.2, 0.2])


def test_four_frames_per_camera_with_internvl(tiny_internvl, clips):
    processor = AutoProcessor.from_pretrained(tiny_internvl)
    inputs = SampleEncoder(processor).encode(two_camera_messages(clips["four"]))
    # Every frame is one 112-px tile of 16 tokens: 2 cameras x 4 frames.
    assert inputs["input_ids"][0].tolist().count(processor.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")) == 128


def test_cameras_with_different_frame_counts_are_refused(qwen_processors, clips, tmp_path):
    two_seconds = str(write_test_clip(tmp_path / "long.mp4", seed=3, frames=60))  # sampled at 8 frames, not 4
    with pytest.raises(VideoError, match="different frame counts"):
        SampleEncoder(qwen_processors["qwen3_vl"]).encode(two_camera_messages([clips["second"][0], two_seconds]))
