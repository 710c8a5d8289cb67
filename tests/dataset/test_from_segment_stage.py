"""Integration: the dataset built from the real segment stage's output (`segments_dir` fixture) and its exports."""

import json
from pathlib import Path

import numpy as np

from pipeline.contracts.answer import parse_answer
from pipeline.contracts.dataset_reader import load_split, read_meta
from pipeline.stages.dataset.stage import DatasetConfig, run
from pipeline.stages.export.stage import ExportConfig
from pipeline.stages.export.stage import run as run_export


def test_dataset_from_segment_stage(segments_dir, tmp_path):
    segments_path = Path(segments_dir) / "metadata" / "segments.json"
    records = {r["id"]: r for r in json.loads(segments_path.read_text())}
    n = len(next(iter(records.values()))["velocity"])
    clips = {r["clip_id"] for r in records.values()}
    out = tmp_path / "ds"
    result = run(DatasetConfig(segments_path=segments_path, output_dir=out, target_hz=n, split_by="clip", seed=1))
    assert result.skipped_missing_video == 0
    assert sum(result.counts.values()) == len(records)
    assert read_meta(out)["video_root"] == str(Path(segments_dir).resolve())
    sides = {}
    for split in ("train", "test"):
        ds = load_split(out, split)
        if len(clips) >= 2:
            assert len(ds) > 0
        for row in ds:
            rec = records[row["id"]]
            sides.setdefault(rec["clip_id"], set()).add(split)
            assert Path(row["video"]).is_file()
            np.testing.assert_array_equal(np.float32(row["velocity"]), np.float32(rec["velocity"]))
            np.testing.assert_array_equal(np.float32(row["history_curvature"]), np.float32(rec["history_curvature"]))
            parsed = parse_answer(row["messages"][2]["content"][0]["text"], n=n)
            assert parsed.complete
            assert np.max(np.abs(parsed.velocity - np.array(rec["velocity"]))) <= 0.005 + 1e-5
            assert np.max(np.abs(parsed.curvature - np.array(rec["curvature"]))) <= 5e-6 + 1e-8
    assert all(len(s) == 1 for s in sides.values())
    exported = run_export(ExportConfig(dataset=out, output_dir=tmp_path / "exports"))
    assert exported.missing_videos == 0

    # The official split of the same records: train clips -> train, val/test clips -> test.
    official = tmp_path / "official"
    run(DatasetConfig(segments_path=segments_path, output_dir=official, target_hz=n, split_by="official"))
    for split, allowed in (("train", {"train"}), ("test", {"val", "test"})):
        ids = load_split(official, split)["id"]
        assert {records[i]["split"] for i in ids} <= allowed
    assert sum(len(load_split(official, s)) for s in ("train", "test")) == len(records)

    # A row's video is the segment mp4 the stage wrote: same frame count through PyAV.
    import av

    row = load_split(out, "train")[0]
    with av.open(row["video"]) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == records[row["id"]]["frame_count"]
