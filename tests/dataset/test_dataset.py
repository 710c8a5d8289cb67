"""The dataset stage: reload, declared features, numbers equal the segment targets, leak-free deterministic split,
whole-clip selection, load_split, and every bad-input case (with the CLI's exit code 2)."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.cli.app import main
from pipeline.contracts.answer import format_answer, parse_answer
from pipeline.contracts.dataset_reader import clean_messages, features, load_split, read_meta
from pipeline.contracts.messages import DEFAULT_SYSTEM_PROMPT, default_prompt
from pipeline.core.errors import PipelineError
from pipeline.stages.dataset.stage import DatasetConfig, run
from tests.fixtures.dataset_fixtures import make_segments_dir

TARGETS = ("velocity", "curvature", "history_velocity", "history_curvature")


def segments_json(segments_dir: Path) -> Path:
    return segments_dir / "metadata" / "segments.json"


def records_by_id(segments_dir: Path) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(segments_json(segments_dir).read_text())}


def split_ids(out: Path) -> dict[str, list[str]]:
    import datasets

    return {s: list(datasets.load_from_disk(str(out / s))["id"]) for s in ("train", "test")}


def build(segments_dir: Path, out: Path, **kwargs) -> Path:
    run(DatasetConfig(segments_path=segments_json(segments_dir), output_dir=out, **kwargs))
    return out


@pytest.fixture(scope="module")
def touched_segments(tmp_path_factory) -> Path:
    """20 clips x 4 segments with empty video files: fast to build, enough clips for split statistics."""
    return make_segments_dir(tmp_path_factory.mktemp("touched") / "segs", n_clips=20, n_segments=4, videos="touch")


def test_reload_features_dtypes_and_numbers(dataset_dir, synthetic_segments_dir):
    import datasets

    expected = records_by_id(synthetic_segments_dir)
    meta = read_meta(dataset_dir)
    assert meta["video_root"] == str(synthetic_segments_dir.resolve())
    assert meta["target_hz"] == meta["n_targets"] == 30 and meta["split_by"] == "clip" and meta["seed"] == 42
    seen = []
    for split in ("train", "test"):
        ds = datasets.load_from_disk(str(dataset_dir / split))
        assert ds.features == features(30)
        schema = ds.data.schema
        assert schema.field("chunk").type == pa.int32() and schema.field("start_us").type == pa.int64()
        assert schema.field("velocity").type == pa.list_(pa.float32(), 30)
        assert meta["counts"][split] == len(ds)
        for row in ds:
            rec = expected[row["id"]]
            for key in ("clip_id", "chunk", "segment_index", "start_us", "end_us", "video"):
                assert row[key] == rec[key], key
            for key in TARGETS:
                np.testing.assert_array_equal(np.float32(row[key]), np.float32(rec[key]))
            messages = clean_messages(row["messages"])
            assert [m["role"] for m in messages] == ["system", "user", "assistant"]
            assert messages[0]["content"] == [{"type": "text", "text": DEFAULT_SYSTEM_PROMPT}]
            assert messages[1]["content"] == [
                {"type": "video", "video": rec["video"]},
                {"type": "text", "text": default_prompt(30)},
            ]
            answer = messages[2]["content"][0]["text"]
            assert answer == format_answer(np.array(rec["velocity"]), np.array(rec["curvature"]))
            parsed = parse_answer(answer)
            assert np.max(np.abs(parsed.velocity - np.array(rec["velocity"]))) <= 0.005 + 1e-6
            assert np.max(np.abs(parsed.curvature - np.array(rec["curvature"]))) <= 5e-6 + 1e-9
            assert (synthetic_segments_dir / row["video"]).is_file()
            seen.append(row["id"])
    assert sorted(seen) == sorted(expected)
    card = (dataset_dir / "README.md").read_text()
    assert "1/km" in card and "m/s" in card and f"| train | {meta['counts']['train']} |" in card
    for split in ("train", "test"):
        examples = json.loads((dataset_dir / f"{split}_examples.json").read_text())
        assert len(examples) == min(5, meta["counts"][split])


def test_clip_split_has_no_overlap_and_both_sides(dataset_dir, synthetic_segments_dir):
    ids = split_ids(dataset_dir)
    recs = records_by_id(synthetic_segments_dir)
    clips = {s: {recs[i]["clip_id"] for i in ids[s]} for s in ids}
    assert clips["train"] and clips["test"] and not clips["train"] & clips["test"]
    # Whole clips on each side: every segment of a test clip is in test.
    for clip in clips["test"]:
        assert {i for i, r in recs.items() if r["clip_id"] == clip} <= set(ids["test"])


def test_official_split_follows_the_split_field(synthetic_segments_dir, tmp_path):
    out = build(synthetic_segments_dir, tmp_path / "ds", split_by="official")
    recs = records_by_id(synthetic_segments_dir)
    ids = split_ids(out)
    assert {recs[i]["split"] for i in ids["train"]} == {"train"}
    assert {recs[i]["split"] for i in ids["test"]} == {"val", "test"}
    assert sorted(ids["train"] + ids["test"]) == sorted(recs)
    assert not {recs[i]["clip_id"] for i in ids["train"]} & {recs[i]["clip_id"] for i in ids["test"]}
    assert read_meta(out)["split_by"] == "official"


def test_history_prompt_and_overrides(synthetic_segments_dir, tmp_path):
    out = build(
        synthetic_segments_dir, tmp_path / "ds", history=True, system_prompt="SYS", prompt="PREDICT", test_ratio=0.5
    )
    recs = records_by_id(synthetic_segments_dir)
    row = load_split(out, "train")[0]
    rec = recs[row["id"]]
    assert row["messages"][0]["content"][0]["text"] == "SYS"
    text = row["messages"][1]["content"][1]["text"]
    history = format_answer(np.array(rec["history_velocity"]), np.array(rec["history_curvature"]))
    assert history in text and text.endswith("\n\nPREDICT")
    assert read_meta(out)["history"] is True


def test_load_split_resolves_paths_and_strips_none(dataset_dir, synthetic_segments_dir, tmp_path):
    files_before = sorted(p.name for p in (dataset_dir / "train").iterdir())
    ds = load_split(dataset_dir, "train")
    assert sorted(p.name for p in (dataset_dir / "train").iterdir()) == files_before  # no cache files written
    row = ds[0]
    assert Path(row["video"]).is_absolute() and Path(row["video"]).is_file()
    assert row["messages"][1]["content"][0]["video"] == row["video"]
    for message in row["messages"]:
        for item in message["content"]:
            assert None not in item.values()
    assert all(Path(v).is_file() for v in ds["video"])
    other = load_split(dataset_dir, "test", video_root=tmp_path)
    assert other[0]["video"].startswith(str(tmp_path.resolve()))
    with pytest.raises(PipelineError, match="unknown split"):
        load_split(dataset_dir, "validation")


def test_missing_video_is_skipped_or_strict(tmp_path):
    segs = make_segments_dir(tmp_path / "segs", n_clips=3, n_segments=2, videos="touch")
    gone = json.loads(segments_json(segs).read_text())[1]
    (segs / gone["video"]).unlink()
    out = build(segs, tmp_path / "ds", allow_empty_split=True)
    meta = read_meta(out)
    assert meta["skipped_missing_video"] == 1
    assert meta["counts"]["train"] + meta["counts"]["test"] == 5
    assert gone["id"] not in sum(split_ids(out).values(), [])
    with pytest.raises(PipelineError, match="not found.*--strict"):
        build(segs, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda recs: recs[0].pop("velocity"), r"record 0 \(id '.*'\): missing field 'velocity'"),
        (lambda recs: recs[2].update(curvature=[0.0] * 29), r"record 2 .*'curvature' has 29 values, expected 30"),
        (lambda recs: recs[1].update(chunk="0"), r"record 1 .*'chunk' must be an integer"),
        (lambda recs: recs[1].update(history_velocity=[None] * 30), r"'history_velocity' must be a list of numbers"),
        (lambda recs: recs[1].update(velocity=["1.0"] * 30), r"'velocity' must be a list of numbers"),
        (lambda recs: recs[3].update(curvature=[float("nan")] * 30), r"record 3 .*'curvature' holds a non-finite"),
        (lambda recs: recs[0].update(video=""), r"record 0 .*'video' must be a non-empty string"),
    ],
)
def test_malformed_segments_name_file_and_field(tmp_path, mutate, message):
    segs = make_segments_dir(tmp_path / "segs", n_clips=2, n_segments=2, videos="touch")
    recs = json.loads(segments_json(segs).read_text())
    mutate(recs)
    segments_json(segs).write_text(json.dumps(recs))
    with pytest.raises(PipelineError, match=message) as err:
        build(segs, tmp_path / "ds")
    assert str(segments_json(segs)) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_fps_must_match_target_count(synthetic_segments_dir, tmp_path):
    with pytest.raises(PipelineError, match=r"'velocity' has 30 values, expected 10 \(--target-hz 10\)"):
        build(synthetic_segments_dir, tmp_path / "ds", target_hz=10)


def test_official_split_needs_the_field(tmp_path):
    segs = make_segments_dir(tmp_path / "segs", n_clips=2, n_segments=1, videos="touch")
    recs = json.loads(segments_json(segs).read_text())
    del recs[1]["split"]
    segments_json(segs).write_text(json.dumps(recs))
    with pytest.raises(PipelineError, match="has no field 'split'"):
        build(segs, tmp_path / "ds", split_by="official")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_cli_errors_exit_2_with_one_line(capsys, tmp_path, synthetic_segments_dir):
    seg = str(segments_json(synthetic_segments_dir))
    code, _, err = run_cli(capsys, "build-dataset", "--segments-path", str(tmp_path / "none.json"))
    assert code == 2 and err.startswith("error: segments file not found") and err.count("\n") == 1
    (tmp_path / "bad.json").write_text("[{")
    code, _, err = run_cli(capsys, "build-dataset", "--segments_path", str(tmp_path / "bad.json"))
    assert code == 2 and "bad.json: not valid JSON" in err
    for ratio in ("0", "1", "1.5", "-0.1"):
        code, _, err = run_cli(capsys, "build-dataset", "--segments-path", seg, "--test-ratio", ratio)
        assert code == 2 and "--test-ratio must be strictly between 0 and 1" in err
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    code, _, err = run_cli(capsys, "build-dataset", "--segments-path", seg, "--output-dir", str(existing))
    assert code == 2 and "output directory exists" in err and "--overwrite" in err
    assert (existing / "keep.txt").read_text() == "x"


def test_cli_builds_and_overwrites(capsys, tmp_path, synthetic_segments_dir):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    args = ["build-dataset", "--segments_path", str(segments_json(synthetic_segments_dir)), "--output_dir", str(out)]
    args += ["--overwrite-output", "--max_samples", "4", "--test-ratio", "0.5"]
    code, stdout, _ = run_cli(capsys, *args)
    assert code == 0
    meta = read_meta(out)
    assert sum(meta["counts"].values()) == 6 and sum(meta["clip_counts"].values()) == 2  # two whole 3-segment clips
    train, test = meta["counts"]["train"], meta["counts"]["test"]
    assert f"train: {train} segments from {train // 3} clips; test: {test} segments from {test // 3} clips" in stdout
    assert not (out / "stale.txt").exists() and (out / "dataset_meta.json").is_file()
