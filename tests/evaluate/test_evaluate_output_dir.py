"""`pipeline evaluate` and its output folder: an existing one is refused without --overwrite, a read-only one is one
line, and a re-run replaces only evaluate's own files (never another mp4 in clips/)."""

from __future__ import annotations

import json

import pytest

from tests.cli_contract import assert_one_line_error, run_in_process


@pytest.fixture
def predictions(dataset_dir, tmp_path):
    import datasets

    ids = datasets.load_from_disk(str(dataset_dir / "test"))["id"]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": "1.0,0.0"}) + "\n" for i in ids))
    return path


def _evaluate(capsys, dataset_dir, predictions, out, *extra):
    return run_in_process(
        capsys, "evaluate", "--dataset", dataset_dir, "--predictions", predictions, "--output-dir", out, *extra
    )


def test_existing_output_dir_is_refused_and_overwrite_replaces_only_evaluates_files(
    dataset_dir, predictions, tmp_path, capsys
):
    out = tmp_path / "report"
    (out / "clips").mkdir(parents=True)
    (out / "clips" / "holiday.mp4").write_bytes(b"the user's video")
    (out / "report.md").write_text("the user's notes")
    refused = _evaluate(capsys, dataset_dir, predictions, out)
    assert_one_line_error(refused, f"output directory exists: {out}", "--overwrite")
    assert (out / "report.md").read_text() == "the user's notes"

    for _ in range(2):
        result = _evaluate(capsys, dataset_dir, predictions, out, "--overwrite")
        assert result.code == 0, result.err
    assert (out / "clips" / "holiday.mp4").read_bytes() == b"the user's video"
    copied = json.loads((out / "clips" / ".evaluate.json").read_text())
    assert copied and all((out / "clips" / name).is_file() for name in copied)
    assert "holiday.mp4" not in copied


def test_read_only_output_dir_is_one_line(dataset_dir, predictions, read_only_dir, capsys):
    result = _evaluate(capsys, dataset_dir, predictions, read_only_dir / "report")
    assert_one_line_error(result, f"--output-dir {read_only_dir / 'report'}", "cannot write there")
