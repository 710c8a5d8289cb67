"""The conversation of a several-camera row: one video part per camera in order, each named, and the same layout
column-wise; one camera stays today's conversation."""

import pyarrow as pa
import pytest

from pipeline.contracts.dataset_reader import features
from pipeline.contracts.messages import (
    DEFAULT_SYSTEM_PROMPT,
    build_messages,
    camera_label,
    default_prompt,
    messages_column,
    user_text,
)

CAMERAS = ("camera_front_wide_120fov", "camera_cross_left_120fov", "camera_rear_tele_30fov")


def test_camera_labels_name_every_camera_of_the_dataset():
    assert [camera_label(c) for c in CAMERAS] == ["front wide camera", "cross left camera", "rear tele camera"]
    assert camera_label("front") == "front camera"


def test_several_cameras_give_one_named_video_part_each_in_order():
    videos = ["a/front.mp4", "a/left.mp4", "a/rear.mp4"]
    messages = build_messages(videos, "1.00,0.00", "sys", "Predict.", "hist", cameras=CAMERAS)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "front wide camera:", "video": None},
        {"type": "video", "text": None, "video": "a/front.mp4"},
        {"type": "text", "text": "\ncross left camera:", "video": None},
        {"type": "video", "text": None, "video": "a/left.mp4"},
        {"type": "text", "text": "\nrear tele camera:", "video": None},
        {"type": "video", "text": None, "video": "a/rear.mp4"},
        {"type": "text", "text": "\nhist\n\nPredict.", "video": None},
    ]


def test_one_camera_is_todays_conversation():
    one = build_messages(["v.mp4"], "a", "sys", "p", cameras=CAMERAS[:1])
    assert one == build_messages("v.mp4", "a", "sys", "p")
    assert one[1]["content"] == [
        {"type": "video", "text": None, "video": "v.mp4"},
        {"type": "text", "text": "p", "video": None},
    ]


def test_video_count_must_match_the_cameras():
    with pytest.raises(ValueError, match="2 videos for 3 cameras"):
        build_messages(["a.mp4", "b.mp4"], "a", "sys", "p", cameras=CAMERAS)
    with pytest.raises(ValueError, match="1 videos for 3 cameras"):
        build_messages("a.mp4", "a", "sys", "p", cameras=CAMERAS)
    with pytest.raises(ValueError, match="2 videos for 0 cameras"):
        build_messages(["a.mp4", "b.mp4"], "a", "sys", "p")


def test_several_camera_column_equals_build_messages():
    videos = [[f"c{i}/{c}.mp4" for c in CAMERAS] for i in range(5)]
    answers = [f"{i}.00,0.00" for i in range(5)]
    histories = [None if i % 2 else f"history {i}" for i in range(5)]
    users = [user_text(default_prompt(30), h) for h in histories]
    arrow_type = features(30).arrow_schema.field("messages").type
    column = messages_column(videos, answers, DEFAULT_SYSTEM_PROMPT, users, arrow_type, cameras=CAMERAS)
    expected = [
        build_messages(v, a, DEFAULT_SYSTEM_PROMPT, default_prompt(30), h, cameras=CAMERAS)
        for v, a, h in zip(videos, answers, histories, strict=True)
    ]
    assert column.to_pylist() == expected
    assert pa.array(expected, type=arrow_type).equals(column)
    with pytest.raises(ValueError, match="every row needs 3 videos"):
        messages_column([videos[0], videos[1][:2]], answers[:2], "s", users[:2], arrow_type, cameras=CAMERAS)
