"""Held-out clips (issue 32): the drive split keeps drives apart and is stable when clips are added, the leakage report
counts planted neighbours exactly, --test-clips clips and their drives never reach train, an empty side exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.av.drives import read_drive_keys
from pipeline.contracts.dataset_reader import META_FILE
from pipeline.core.errors import PipelineError
from pipeline.stages.dataset.stage import DatasetConfig, run
from tests.fixtures.dataset_fixtures import make_segment_records, write_segment_files

CLIP_US = 20_000_000


def drive_records(n_drives: int, clips_per_drive: int, first_drive: int = 0, offsets: bool = False) -> list[dict]:
    """Records of n_drives x clips_per_drive clips (2 segments each) with drive keys, and with offsets one clip
    length apart when `offsets`."""
    n_clips = n_drives * clips_per_drive
    first = first_drive * clips_per_drive
    records = make_segment_records(n_clips=n_clips, n_segments=2, first_clip=first)
    for rec in records:
        number = first + [r["clip_id"] for r in records].index(rec["clip_id"]) // 2
        rec["drive"] = f"session_id=d{number // clips_per_drive}"
        rec["drive_offset_us"] = (number % clips_per_drive) * CLIP_US if offsets else -1
    return records


def build(tmp: Path, records: list[dict], name: str = "ds", **kwargs) -> tuple[Path, dict]:
    segs = tmp / f"segs_{name}"
    for rec in records:
        (segs / rec["video"]).parent.mkdir(parents=True, exist_ok=True)
        (segs / rec["video"]).touch()
    write_segment_files(segs, records)
    out = tmp / name
    run(DatasetConfig(segments_path=segs / "metadata" / "segments.parquet", output_dir=out, **kwargs))
    return out, json.loads((out / META_FILE).read_text())


def sides(out: Path) -> dict[str, set[str]]:
    import datasets

    return {s: set(datasets.load_from_disk(str(out / s))["clip_id"]) for s in ("train", "test")}


def drive_of(records: list[dict]) -> dict[str, str]:
    return {r["clip_id"]: r["drive"] for r in records}


def test_drive_split_is_the_default_keeps_drives_apart_and_is_stable(tmp_path):
    records = drive_records(n_drives=12, clips_per_drive=4)
    out, meta = build(tmp_path, records, test_ratio=0.3)
    assert meta["split_by"] == "drive" and meta["split_method"] == "drive-blake2b-v1"
    assert "every record has a drive key" in meta["split_by_reason"]
    assert "by drive" in (out / "README.md").read_text()
    drives = drive_of(records)
    got = sides(out)
    assert got["train"] and got["test"]
    assert not {drives[c] for c in got["train"]} & {drives[c] for c in got["test"]}
    assert meta["leakage"]["test_clips_sharing_drive_with_train"] == 0
    more = records + drive_records(n_drives=6, clips_per_drive=4, first_drive=12)
    out2, _ = build(tmp_path, more, name="more", test_ratio=0.3)
    bigger = sides(out2)
    assert got["train"] <= bigger["train"] and got["test"] <= bigger["test"]


def test_clip_split_leakage_counts_planted_neighbours_exactly(tmp_path):
    records = drive_records(n_drives=10, clips_per_drive=5, offsets=True)
    out, meta = build(tmp_path, records, split_by="clip", test_ratio=0.3)
    got = sides(out)
    drives = drive_of(records)
    start = {r["clip_id"]: r["drive_offset_us"] for r in records}
    sharing = sum(any(drives[t] == drives[c] for c in got["train"]) for t in got["test"])
    next_to = sum(
        any(drives[t] == drives[c] and abs(start[t] - start[c]) == CLIP_US for c in got["train"]) for t in got["test"]
    )
    leakage = meta["leakage"]
    assert next_to > 0 and sharing >= next_to
    assert leakage["test_clips"] == len(got["test"])
    assert leakage["test_clips_sharing_drive_with_train"] == sharing
    assert leakage["test_clips_next_to_train"] == next_to
    assert leakage["drive_key"] == "session_id"


def test_neighbours_cannot_be_told_with_the_published_grouping(tmp_path):
    records = drive_records(n_drives=6, clips_per_drive=3)
    out, meta = build(tmp_path, records, split_by="clip", test_ratio=0.4)
    assert meta["leakage"]["test_clips_next_to_train"] is None
    assert "cannot be told" in meta["leakage"]["neighbours"]
    assert "cannot be told" in (out / "README.md").read_text()


@pytest.mark.parametrize("split_by", ["clip", "drive", "official"])
def test_test_clips_and_their_drives_never_reach_train(tmp_path, split_by):
    records = drive_records(n_drives=8, clips_per_drive=3)
    listed = [records[0]["clip_id"], records[14]["clip_id"], "not-a-clip"]
    path = tmp_path / "eval.parquet"
    pd.DataFrame({"x": [1, 2, 3]}, index=pd.Index(listed, name="clip_id")).to_parquet(path)
    out, meta = build(tmp_path, records, split_by=split_by, test_ratio=0.3, test_clips=path)
    got = sides(out)
    drives = drive_of(records)
    held = {drives[c] for c in listed[:2]}
    assert set(listed[:2]) <= got["test"]
    assert not {drives[c] for c in got["train"]} & held
    assert meta["test_clips"]["found"] == 2 and meta["test_clips"]["missing"] == ["not-a-clip"]


def test_allow_drive_neighbours_holds_out_only_the_listed_clips(tmp_path):
    records = drive_records(n_drives=8, clips_per_drive=3)
    listed = tmp_path / "eval.txt"
    listed.write_text(f"# NVIDIA eval\n{records[0]['clip_id']}\n\n", encoding="utf-8")
    out, meta = build(
        tmp_path, records, split_by="official", test_clips=listed, allow_drive_neighbours=True, test_ratio=0.3
    )
    assert records[0]["clip_id"] in sides(out)["test"]
    assert meta["test_clips"]["held_drives"] == 0


def test_five_clip_build_with_an_empty_side_is_one_line_error(tmp_path):
    records = make_segment_records(n_clips=5, n_segments=2)
    with pytest.raises(PipelineError) as err:
        build(tmp_path, records, test_ratio=0.1)
    text = str(err.value)
    assert "\n" not in text and "train got 5 clip(s) and test 0" in text
    assert "--seed" in text and "--test-ratio" in text and "--allow-empty-split" in text
    assert not (tmp_path / "ds").exists()


def test_explicit_drive_split_needs_drive_keys(tmp_path):
    with pytest.raises(PipelineError, match="have no drive key"):
        build(tmp_path, make_segment_records(n_clips=5, n_segments=2), split_by="drive")


def test_read_drive_keys_prefers_a_finer_id(tmp_path):
    ids = pd.Index(["a", "b", "c"], name="clip_id")
    coarse = pd.DataFrame(
        {"platform_class": ["p", "p", None], "country": ["X"] * 3, "month": [1] * 3, "hour_of_day": [9] * 3},
        index=ids,
    )
    coarse.to_parquet(tmp_path / "coarse.parquet")
    keys = read_drive_keys(tmp_path / "coarse.parquet")
    assert keys["a"].key == keys["b"].key == "platform_class=p|country=X|month=1|hour_of_day=9"
    assert keys["c"].key == "" and keys["a"].offset_us == -1
    coarse.assign(session_id=["s1", "s2", "s2"], drive_offset_us=[0, 0, 20_000_000]).to_parquet(tmp_path / "f.parquet")
    fine = read_drive_keys(tmp_path / "f.parquet")
    assert fine["a"].key == "session_id=s1" and fine["c"].key == "session_id=s2" and fine["c"].offset_us == 20_000_000
    assert read_drive_keys(tmp_path / "absent.parquet") == {}
