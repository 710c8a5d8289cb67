"""Exports of several-camera rows, read back: every camera's video in the conversation's order, one `<video>` tag
per video at its place in the user turn, each camera named; paths relative or absolute as each framework wants."""

import json
from pathlib import Path

import datasets
import pytest

from pipeline.contracts.dataset_reader import META_FILE, features
from pipeline.contracts.messages import DEFAULT_SYSTEM_PROMPT, build_messages, default_prompt
from pipeline.stages.export.stage import ExportConfig, run

CAMERAS = ("camera_front_wide_120fov", "camera_cross_left_120fov", "camera_cross_right_120fov")
N = 2  # targets per row


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """A 3-camera dataset (1 train row, 1 test row; empty mp4 files) exported to every framework."""
    root = tmp_path_factory.mktemp("cameras")
    video_root = root / "segments"
    for split, i in (("train", 0), ("test", 1)):
        videos = [f"c{i}/{camera}.mp4" for camera in CAMERAS]
        for video in videos:
            (video_root / video).parent.mkdir(parents=True, exist_ok=True)
            (video_root / video).write_bytes(b"")
        row = {
            "id": f"row{i}",
            "clip_id": f"c{i}",
            "chunk": 0,
            "segment_index": 0,
            "start_us": 0,
            "end_us": 1_000_000,
            "video": videos[0],
            "messages": build_messages(
                videos, f"{i}.00,0.00\n{i}.00,0.00", DEFAULT_SYSTEM_PROMPT, default_prompt(N), cameras=CAMERAS
            ),
            **{k: [0.0] * N for k in ("velocity", "curvature", "history_velocity", "history_curvature")},
        }
        datasets.Dataset.from_list([row], features=features(N)).save_to_disk(str(root / "dataset" / split))
    meta = {"video_root": str(video_root.resolve()), "target_hz": N, "split": "random", "seed": 0}
    (root / "dataset" / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    out = root / "exports"
    result = run(ExportConfig(dataset=root / "dataset", output_dir=out))
    assert result.counts == {"train": 1, "test": 1} and result.missing_videos == 0
    return out


USER = f"front wide camera:<video>\ncross left camera:<video>\ncross right camera:<video>\n{default_prompt(N)}"


@pytest.mark.parametrize("framework", ["ms-swift", "llama-factory"])
def test_messages_formats_list_every_camera_in_tag_order(export_dir, framework):
    for split, i in (("train", 0), ("test", 1)):
        (record,) = read_jsonl(export_dir / framework / f"{split}.jsonl")
        video_root = json.loads((export_dir / "export_meta.json").read_text())["video_root"]
        assert record["videos"] == [f"{video_root}/c{i}/{camera}.mp4" for camera in CAMERAS]
        assert record["messages"] == [
            {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": USER},
            {"role": "assistant", "content": f"{i}.00,0.00\n{i}.00,0.00"},
        ]
        assert record["messages"][1]["content"].count("<video>") == len(record["videos"])


def test_qwen_vl_finetune_lists_relative_videos(export_dir):
    (record,) = read_jsonl(export_dir / "qwen-vl-finetune" / "train.jsonl")
    assert record["video"] == [f"c0/{camera}.mp4" for camera in CAMERAS]
    assert record["conversations"] == [
        {"from": "human", "value": f"{DEFAULT_SYSTEM_PROMPT}\n\n{USER}"},
        {"from": "gpt", "value": "0.00,0.00\n0.00,0.00"},
    ]
