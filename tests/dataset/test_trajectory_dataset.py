"""build-dataset on trajectory segments: the extended columns (`cameras`, `videos`, `future_xyh`, `history_xyh`)
carry the records' values as float32, and dataset_meta.json records the segments' "targets"; the segments
reader refuses bad trajectories."""

import json

import numpy as np
import pytest

from pipeline.contracts.dataset_reader import load_split, read_meta
from pipeline.contracts.segments_reader import SegmentsFile
from pipeline.core.errors import PipelineError
from pipeline.stages.dataset.config import DatasetConfig
from pipeline.stages.dataset.stage import run
from tests.fixtures.dataset_fixtures import make_segment_records, write_segment_files
from tests.fixtures.segment_fixtures import make_segments

SETTINGS = {"target_kind": "both", "horizon_s": 2.0, "target_hz": 10.0, "history_steps": 4, "history_hz": 5.0}


@pytest.fixture(scope="module")
def trajectory_build(synthetic_repo, tmp_path_factory):
    root = tmp_path_factory.mktemp("trajectory_build")
    segments = root / "segments"
    make_segments(synthetic_repo.root, segments, max_clips=2, size=(64, 36), **SETTINGS)
    out = root / "dataset"
    run(
        DatasetConfig(
            segments_path=segments / "metadata" / "segments.parquet",
            output_dir=out,
            target_hz=10,
            allow_empty_split=True,
        )
    )
    return segments, out


def test_rows_carry_the_records_trajectories_and_cameras(trajectory_build):
    segments, out = trajectory_build
    records = {r["id"]: r for r in json.loads((segments / "metadata" / "segments.json").read_text())}
    rows = [row for split in ("train", "test") for row in load_split(out, split)]
    assert len(rows) == len(records) > 0
    for row in rows:
        rec = records[row["id"]]
        assert row["cameras"] == ["camera_front_wide_120fov"]
        assert row["videos"] == [rec["video"]]  # relative, as in the records (load_split resolves `video` only)
        for name, steps in (("future_xyh", 20), ("history_xyh", 4)):
            got = np.array(row[name])
            assert got.shape == (steps, 3)
            np.testing.assert_array_equal(got, np.array(rec[name], dtype=np.float32))


def test_meta_records_the_targets(trajectory_build):
    _, out = trajectory_build
    meta = read_meta(out)
    # target_hz is the rate (the flag); n_targets the length of every target list: 2 s at 10 Hz
    assert (meta["target_hz"], meta["n_targets"]) == (10, 20)
    assert len(load_split(out, "train")[0]["velocity"]) == 20
    card = (out / "README.md").read_text()
    # targets "both": the answer is the path (the motion stays in the columns)
    assert card.startswith("# PhysicalAI-AV 2-second ego-path dataset")
    assert "**Answer format**: the future path, 20 lines, line k (k = 1..20) = the position k/10 s after" in card
    assert "`future_xyh` (20, 3) and `history_xyh` (4, 3)" in card and "1/km" not in card
    answer = load_split(out, "train")[0]["messages"][-1]["content"][0]["text"]
    assert answer.splitlines()[:3] == card.split("```\n")[1].splitlines()[:3]
    assert meta["targets"] == {
        "targets": "both",
        "horizon_s": 2.0,
        "target_hz": 10.0,
        "history_steps": 4,
        "history_hz": 5.0,
        "cameras": ["camera_front_wide_120fov"],
        "frames_per_camera": None,
        "frame_spacing_s": 0.1,
    }


def test_a_motion_build_has_no_extended_columns(dataset_dir):
    assert "targets" not in read_meta(dataset_dir)
    card = (dataset_dir / "README.md").read_text()
    assert card.startswith("# PhysicalAI-AV next-second motion dataset") and "the motion k/30 s after" in card
    assert "future_xyh" not in load_split(dataset_dir, "train").column_names


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[1.0, 2.0]], "rows must have 3 values"),
        ([[1.0, float("nan"), 0.0]], "non-finite"),
        ([[1e5, 0.0, 0.0]], "outside"),
        ([[1.0, 0.0, 4.0]], "outside"),
    ],
)
def test_the_reader_refuses_bad_trajectories(tmp_path, value, message):
    records = make_segment_records(n_clips=1, n_segments=2)
    records[1]["future_xyh"] = value
    write_segment_files(tmp_path, records)
    with pytest.raises(PipelineError, match=f"record 1 .*future_xyh.*{message}"):
        list(SegmentsFile(tmp_path / "metadata" / "segments.parquet", 30).batches())
    json_message = r"\[x, y, heading\] rows" if len(value[0]) != 3 else message
    with pytest.raises(PipelineError, match=f"record 1 .*future_xyh.*{json_message}"):
        list(SegmentsFile(tmp_path / "metadata" / "segments.json", 30).batches())


def test_the_reader_refuses_videos_that_disagree(tmp_path):
    records = make_segment_records(n_clips=1, n_segments=2)
    records[0]["videos"] = ["elsewhere.mp4"]
    write_segment_files(tmp_path, records)
    with pytest.raises(PipelineError, match="must start with the record's 'video'"):
        list(SegmentsFile(tmp_path / "metadata" / "segments.json", 30).batches())
