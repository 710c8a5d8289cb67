"""The clip split is a pure function of (seed, clip id): stable when chunks are added, `--max-samples` builds are
subsets, parquet and JSON inputs give identical datasets. Sides are recomputed here from the documented formula
(keyed BLAKE2b) with hashlib, independently of pipeline.stages.dataset.split."""

import hashlib
import json
from pathlib import Path

import datasets
import pytest

from pipeline.contracts.dataset_reader import read_meta
from pipeline.stages.dataset.stage import DatasetConfig, run
from tests.fixtures.dataset_fixtures import make_segment_records, write_segment_files


def unit(seed: int, clip_id: str, purpose: bytes) -> int:
    digest = hashlib.blake2b(clip_id.encode(), digest_size=8, key=str(seed).encode(), person=purpose).digest()
    return int.from_bytes(digest, "big")


def expected_side(seed: int, clip_id: str, ratio: float) -> str:
    return "test" if (unit(seed, clip_id, b"split") >> 11) / 2**53 < ratio else "train"


def chunk_records(chunks: range, clips_per_chunk: int = 6, segments: int = 2) -> list[dict]:
    return [
        rec
        for k in chunks
        for rec in make_segment_records(clips_per_chunk, segments, chunk=k, first_clip=clips_per_chunk * k)
    ]


def segments_dir(root: Path, records: list[dict]) -> Path:
    for rec in records:
        (root / rec["video"]).parent.mkdir(parents=True, exist_ok=True)
        (root / rec["video"]).touch()
    write_segment_files(root, records)
    return root


def sides(out: Path) -> dict[str, dict[str, str]]:
    """clip id -> side, and segment id -> side."""
    clips, rows = {}, {}
    for split in ("train", "test"):
        ds = datasets.load_from_disk(str(out / split))
        for clip_id, rid in zip(ds["clip_id"], ds["id"], strict=True):
            assert clips.setdefault(clip_id, split) == split
            rows[rid] = split
    return {"clips": clips, "rows": rows}


def build(segs: Path, out: Path, name: str = "segments.parquet", **kwargs) -> Path:
    run(DatasetConfig(segments_path=segs / "metadata" / name, output_dir=out, **kwargs))
    return out


@pytest.fixture(scope="module")
def grown(tmp_path_factory) -> tuple[Path, Path]:
    """Segments of chunks 0-3, and of chunks 0-7 (6 clips x 2 segments per chunk)."""
    root = tmp_path_factory.mktemp("grown")
    return segments_dir(root / "small", chunk_records(range(4))), segments_dir(root / "large", chunk_records(range(8)))


def test_adding_chunks_never_moves_a_clip(grown, tmp_path):
    small, large = grown
    first = sides(build(small, tmp_path / "a", seed=5, test_ratio=0.3))["clips"]
    second = sides(build(large, tmp_path / "b", seed=5, test_ratio=0.3))["clips"]
    assert len(first) == 24 and len(second) == 48
    assert {c: second[c] for c in first} == first
    assert {c: expected_side(5, c, 0.3) for c in second} == second
    assert set(first.values()) == {"train", "test"}
    meta = read_meta(tmp_path / "b")
    assert meta["split_method"] == "clip-blake2b-v1" and meta["seed"] == 5


def test_split_is_deterministic_and_seeded(grown, tmp_path):
    _, large = grown
    a = sides(build(large, tmp_path / "a", seed=7, test_ratio=0.25))
    b = sides(build(large, tmp_path / "b", seed=7, test_ratio=0.25))
    c = sides(build(large, tmp_path / "c", seed=8, test_ratio=0.25))
    assert a == b and a != c
    for seed, found in ((7, a), (8, c)):
        assert found["clips"] == {clip: expected_side(seed, clip, 0.25) for clip in found["clips"]}


def test_max_samples_build_is_a_subset_in_hash_order(grown, tmp_path):
    _, large = grown
    full = sides(build(large, tmp_path / "full", seed=3, test_ratio=0.3))
    part = sides(build(large, tmp_path / "part", seed=3, test_ratio=0.3, max_samples=15))
    order = sorted(full["clips"], key=lambda clip: unit(3, clip, b"select"))
    assert set(part["clips"]) == set(order[:8])  # 2-segment clips until >= 15 segments: 8 whole clips
    assert len(part["rows"]) == 16
    assert part["rows"].items() <= full["rows"].items()
    test_clips = {c for c, s in part["clips"].items() if s == "test"}
    assert test_clips <= {c for c, s in full["clips"].items() if s == "test"}
    smaller = sides(build(large, tmp_path / "smaller", seed=3, test_ratio=0.3, max_samples=5))
    assert smaller["rows"].items() <= part["rows"].items()


def test_parquet_and_json_give_identical_datasets(grown, tmp_path):
    small, _ = grown
    for kwargs in ({}, {"history": True, "split_by": "official"}):
        a = build(small, tmp_path / f"p{len(kwargs)}", **kwargs)
        b = build(small, tmp_path / f"j{len(kwargs)}", name="segments.json", **kwargs)
        for split in ("train", "test"):
            rows_a = datasets.load_from_disk(str(a / split)).to_list()
            assert rows_a == datasets.load_from_disk(str(b / split)).to_list()
            assert rows_a
        meta_a, meta_b = read_meta(a), read_meta(b)
        assert meta_a["counts"] == meta_b["counts"] and meta_a["clip_counts"] == meta_b["clip_counts"]


def test_splits_are_sharded_arrow(grown, tmp_path):
    _, large = grown
    out = build(large, tmp_path / "ds", max_shard_mb=0.05, num_proc=2)
    state = json.loads((out / "train" / "state.json").read_text())
    shards = [f["filename"] for f in state["_data_files"]]
    assert len(shards) >= 2 and shards == sorted(p.name for p in (out / "train").glob("*.arrow"))
    reference = build(large, tmp_path / "ref")
    for split in ("train", "test"):
        assert (
            datasets.load_from_disk(str(out / split)).to_list()
            == datasets.load_from_disk(str(reference / split)).to_list()
        )
    assert not list(out.glob("*.arrow"))  # the part files are gone
