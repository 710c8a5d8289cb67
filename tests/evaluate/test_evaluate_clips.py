"""`evaluate --clips`: exactly the listed clips that exist are scored, and the missing ones are named with why."""

import json

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts.answer import format_answer
from pipeline.stages.evaluate.clip_selection import NOT_IN_DATASET, missing_reasons
from pipeline.stages.evaluate.stage import EvaluateConfig, run
from tests.cli_contract import assert_one_line_error, run_in_process
from tests.evaluate.test_evaluate import split_arrays, write_jsonl


def truth_file(path, split):
    """A predictions file answering every sample of `split` with its truth."""
    records = [
        {"id": i, "text": format_answer(v, k)}
        for i, v, k in zip(split["id"], split["velocity"], split["curvature"], strict=True)
    ]
    return write_jsonl(path, records)


def clip_of(sample_id):
    return sample_id.rsplit("_", 1)[0]


def test_only_the_listed_clips_are_scored_and_the_missing_ones_named(dataset_dir, tmp_path):
    train = split_arrays(dataset_dir, "train")
    train_clips = sorted({clip_of(i) for i in train["id"]})
    test_clip = clip_of(split_arrays(dataset_dir, "test")["id"][0])
    listed = [train_clips[2], "no-such-clip", train_clips[0], test_clip]
    clips = tmp_path / "eval.parquet"
    pq.write_table(pa.table({"clip_id": listed, "split": ["eval"] * 4}), clips)
    out = tmp_path / "out"

    preds = truth_file(tmp_path / "p.jsonl", train)
    result = run(EvaluateConfig(dataset=dataset_dir, split="train", output_dir=out, predictions=preds, clips=clips))

    expected = [i for i in train["id"] if clip_of(i) in {train_clips[0], train_clips[2]}]
    assert result.ids == expected and len(expected) > 0
    assert result.info["samples_without_prediction"] == 0  # the other clips' answers are left out, not missing
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == len(expected)
    assert metrics["clips"] == {
        "file": str(clips),
        "listed": 4,
        "found": 2,
        "samples": len(expected),
        "missing": [
            {"clip_id": "no-such-clip", "reason": NOT_IN_DATASET},
            {"clip_id": test_clip, "reason": "in split 'test', not 'train'"},
        ],
    }
    report = (out / "report.md").read_text()
    assert f"only those listed in `{clips}`: 2 of 4 found ({len(expected)} samples), 2 missing:" in report
    assert f"  - `{test_clip}`: in split 'test', not 'train'" in report


def test_cli_clips_from_a_text_file_and_none_found_is_one_line(dataset_dir, tmp_path, capsys):
    test = split_arrays(dataset_dir, "test")
    preds = truth_file(tmp_path / "p.jsonl", test)
    listed = tmp_path / "clips.txt"
    listed.write_text(f"# held out\n{clip_of(test['id'][0])}\n\nnot-a-clip  # gone\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["evaluate", "--dataset", dataset_dir, "--predictions", preds, "--output-dir", out]
    done = run_in_process(capsys, *args, "--clips", listed)
    assert done.code == 0, done.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["clips"]["found"], metrics["clips"]["listed"]) == (1, 2)
    assert metrics["n_samples"] == len(test["id"])

    listed.write_text("not-a-clip\n", encoding="utf-8")
    failed = run_in_process(capsys, *args, "--clips", listed, "--overwrite")
    assert assert_one_line_error(failed) == (
        f"error: --clips {listed}: none of the 1 listed clips is in split 'test' (e.g. not-a-clip: {NOT_IN_DATASET})"
    )


def test_the_segment_manifest_tells_why_a_clip_is_missing(dataset_dir, tmp_path):
    meta_dir = tmp_path / "segments" / "metadata"
    meta_dir.mkdir(parents=True)
    rows = [
        {"clip_id": "cut-badly", "chunk": 0, "status": "skipped", "reason": "no usable segment"},
        {"clip_id": "left-out", "chunk": 0, "status": "done", "reason": None},
    ]
    (meta_dir / "manifest.json").write_text(json.dumps({"config": {}, "clips": rows}), encoding="utf-8")
    meta = {"segments_path": str(meta_dir / "segments.json")}

    reasons = missing_reasons(["cut-badly", "left-out", "never-cut"], "test", dataset_dir, meta)

    assert reasons == {
        "cut-badly": "skipped at segmenting: no usable segment",
        "left-out": f"{NOT_IN_DATASET} (segmented, status done, but left out of this build)",
        "never-cut": f"{NOT_IN_DATASET} (never segmented: not downloaded, or not selected for segmenting)",
    }
