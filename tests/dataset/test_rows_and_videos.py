"""The column-wise row builders equal the per-row definitions, and video existence costs one directory listing per
directory, never a `stat` per file."""

import os

import numpy as np
import pyarrow as pa

from pipeline.contracts.dataset_reader import features
from pipeline.contracts.messages import (
    DEFAULT_SYSTEM_PROMPT,
    build_messages,
    default_prompt,
    messages_column,
    user_text,
)
from pipeline.contracts.video_files import VideoFiles


def test_messages_column_equals_build_messages():
    videos = [f"video_segments/chunk_0000/c{i}/c{i}_{i:02d}.mp4" for i in range(7)]
    answers = [f"{i}.00,0.00" for i in range(7)]
    histories = [None if i % 2 else f"history {i}" for i in range(7)]
    users = [user_text(default_prompt(30), h) for h in histories]
    arrow_type = features(30).arrow_schema.field("messages").type
    column = messages_column(videos, answers, DEFAULT_SYSTEM_PROMPT, users, arrow_type)
    assert column.type == arrow_type
    expected = [
        build_messages(v, a, DEFAULT_SYSTEM_PROMPT, default_prompt(30), h)
        for v, a, h in zip(videos, answers, histories, strict=True)
    ]
    assert column.to_pylist() == expected
    assert pa.array(expected, type=arrow_type).equals(column)


def test_video_existence_lists_each_directory_once(tmp_path, monkeypatch):
    for clip in range(3):
        for seg in range(19):
            path = tmp_path / f"c{clip}" / f"s{seg:02d}.mp4"
            path.parent.mkdir(exist_ok=True)
            path.touch()
    (tmp_path / "c1" / "s05.mp4").unlink()
    (tmp_path / "c2" / "s07.mp4").unlink()
    (tmp_path / "c2" / "s07.mp4").mkdir()  # a directory is not a video file
    videos = [f"c{clip}/s{seg:02d}.mp4" for clip in range(4) for seg in range(19)]  # c3 does not exist
    expected = np.array([(tmp_path / v).is_file() for v in videos])

    listed = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda d: listed.append(d) or real_scandir(d))
    monkeypatch.setattr(os, "stat", lambda *a, **k: (_ for _ in ()).throw(AssertionError("stat per file")))
    exists = VideoFiles().exist(str(tmp_path), pa.array(videos))
    monkeypatch.undo()
    assert (exists == expected).all() and (~exists).sum() == 2 + 19
    assert sorted(listed) == sorted(str(tmp_path / f"c{clip}") + "/" for clip in range(4))
