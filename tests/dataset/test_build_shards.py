"""The build writes each split's shards itself: `datasets.load_from_disk` (the independent reader) loads them with
the declared features and the counts of dataset_meta.json, shards stay under `--max-shard-mb`, an empty split
loads; and duplicate segment ids are refused, clip by clip or, for a file whose clips are not contiguous or whose
ids are not `<clip_id>_<NN>`, over the whole file."""

import json
import shutil
from pathlib import Path

import datasets
import pyarrow as pa
import pytest

from pipeline.contracts.dataset_reader import features, read_meta
from pipeline.stages.dataset.stage import DatasetConfig, run
from pipeline.stages.dataset.writing import job_ranges
from tests.cli_contract import assert_one_line_error, run_in_process
from tests.fixtures.dataset_fixtures import make_segment_records, write_segment_files


def touched(root: Path, records: list[dict]) -> Path:
    """A segments directory of `records` (parquet row groups of 7, so clips span row groups) with empty videos."""
    for rec in records:
        (root / rec["video"]).parent.mkdir(parents=True, exist_ok=True)
        (root / rec["video"]).touch()
    write_segment_files(root, records)
    return root


def arrow_rows(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as source, pa.ipc.open_stream(source) as reader:
        return reader.read_all()


@pytest.mark.parametrize("num_proc", [1, 2])
def test_shards_load_with_load_from_disk(tmp_path, num_proc):
    segs = touched(tmp_path / "segs", make_segment_records(n_clips=12, n_segments=5))
    limit_mb = 0.03
    out = tmp_path / "ds"
    run(
        DatasetConfig(
            segments_path=segs / "metadata" / "segments.parquet",
            output_dir=out,
            test_ratio=0.3,
            max_shard_mb=limit_mb,
            num_proc=num_proc,
        )
    )
    meta = read_meta(out)
    assert sum(meta["counts"].values()) == 60 and min(meta["counts"].values()) > 0
    ids = []
    for split in ("train", "test"):
        ds = datasets.load_from_disk(str(out / split))
        assert len(ds) == meta["counts"][split] and ds.features == features(30)
        ids += ds["id"]
        names = [f["filename"] for f in json.loads((out / split / "state.json").read_text())["_data_files"]]
        assert names == [f"data-{i:05d}-of-{len(names):05d}.arrow" for i in range(len(names))]
        assert sorted(p.name for p in (out / split).iterdir()) == sorted([*names, "dataset_info.json", "state.json"])
        tables = [arrow_rows(out / split / name) for name in names]
        assert sum(len(t) for t in tables) == len(ds) and all(len(t) for t in tables)
        assert all(t.nbytes <= 1.1 * limit_mb * 1e6 for t in tables)
        assert [i for t in tables for i in t.column("id").to_pylist()] == ds["id"]
    assert len(list((out / "train").glob("data-*.arrow"))) >= 3
    assert sorted(ids) == sorted(r["id"] for r in make_segment_records(n_clips=12, n_segments=5))


def test_an_empty_split_loads(tmp_path):
    records = [dict(r, split="train") for r in make_segment_records(n_clips=2, n_segments=3)]
    segs = touched(tmp_path / "segs", records)
    out = tmp_path / "ds"
    segments = segs / "metadata" / "segments.parquet"
    run(DatasetConfig(segments_path=segments, output_dir=out, split_by="official", allow_empty_split=True))
    empty = datasets.load_from_disk(str(out / "test"))
    assert len(empty) == 0 and empty.features == features(30)
    assert len(datasets.load_from_disk(str(out / "train"))) == 6
    assert json.loads((out / "test_examples.json").read_text()) == []


def test_job_ranges_cover_the_parts_in_order():
    assert job_ranges([7, 7, 7, 7], 2) == [range(0, 2), range(2, 4)]
    assert job_ranges([5, 1, 1, 1, 1, 1], 2) == [range(0, 1), range(1, 6)]
    assert job_ranges([3], 4) == [range(0, 1)]
    assert job_ranges([2, 2, 2], 1) == [range(0, 3)]


def repeat_in_clip(recs):
    """Record 2 repeats record 0 (indices 0, 1, 0 pass the time-order check)."""
    recs[2] = dict(recs[0])
    return recs[0]["id"]


def repeat_across_row_groups(recs):
    """The clip's 9th record repeats its 2nd: the clip spans two parquet row groups of 7."""
    recs[8] = dict(recs[1])
    return recs[1]["id"]


def repeat_after_another_clip(recs):
    """A record of the first clip comes back after the second clip (the file's clips are not contiguous)."""
    recs.append(dict(recs[1]))
    return recs[1]["id"]


def same_id_in_two_clips(recs):
    """A record of the second clip carries an id of the first (not `<clip_id>_<NN>`)."""
    recs[9]["id"] = recs[0]["id"]
    return recs[0]["id"]


@pytest.mark.parametrize("name", ["segments.parquet", "segments.json"])
@pytest.mark.parametrize(
    "mutate", [repeat_in_clip, repeat_across_row_groups, repeat_after_another_clip, same_id_in_two_clips]
)
def test_duplicate_ids_exit_2_with_one_line(tmp_path, capsys, name, mutate):
    recs = make_segment_records(n_clips=2, n_segments=9)
    rid = mutate(recs)
    segs = touched(tmp_path / "segs", recs)
    path = segs / "metadata" / name
    out = tmp_path / "ds"
    result = run_in_process(capsys, "build-dataset", "--segments-path", path, "--output-dir", out)
    assert_one_line_error(result, str(path), f"duplicate segment id {rid!r}")
    assert not out.exists()


def test_clips_out_of_order_build_the_same_rows(tmp_path):
    recs = make_segment_records(n_clips=3, n_segments=4)
    shuffled = recs[0:2] + recs[4:8] + recs[2:4] + recs[8:]  # the first clip in two runs
    rows = {}
    for label, records in (("sorted", recs), ("shuffled", shuffled)):
        segs = touched(tmp_path / label, records)
        out = tmp_path / f"ds_{label}"
        run(DatasetConfig(segments_path=segs / "metadata" / "segments.parquet", output_dir=out, test_ratio=0.5))
        rows[label] = {
            split: sorted(datasets.load_from_disk(str(out / split)).to_list(), key=lambda r: r["id"])
            for split in ("train", "test")
        }
        shutil.rmtree(segs)
    assert rows["sorted"] == rows["shuffled"] and rows["sorted"]["train"]
