"""A read-only `--output-dir` (or one inside a read-only folder) for `build-dataset` and `export` is one line naming
the folder, exit 2, before any work (train, merge-lora and evaluate: tests/train/test_model_checks.py,
tests/evaluate/test_evaluate_output_dir.py; segment: tests/segment/test_reruns_and_locks.py)."""

from __future__ import annotations

import pytest

from tests.cli_contract import assert_one_line_error, run_in_process


def _command(name, dataset_dir, synthetic_segments_dir):
    if name == "build-dataset":
        return ["build-dataset", "--segments-path", synthetic_segments_dir / "metadata" / "segments.json"]
    return ["export", "--dataset", dataset_dir]


@pytest.mark.parametrize("inside", [True, False], ids=["new-folder-inside", "existing-with-overwrite"])
@pytest.mark.parametrize("command", ["build-dataset", "export"])
def test_read_only_output_dir_is_one_line(
    dataset_dir, synthetic_segments_dir, read_only_dir, capsys, monkeypatch, command, inside
):
    import pipeline.contracts.dataset_reader as dataset_reader
    import pipeline.contracts.segments_reader as segments_reader

    def no_work(*args, **kwargs):
        raise AssertionError("the input was read before the output folder was checked")

    monkeypatch.setattr(segments_reader.SegmentsFile, "batches", no_work)
    monkeypatch.setattr(dataset_reader, "split_batches", no_work)
    out, extra = (read_only_dir / "out", []) if inside else (read_only_dir, ["--overwrite"])
    args = [*_command(command, dataset_dir, synthetic_segments_dir), "--output-dir", out, *extra]
    result = run_in_process(capsys, *args)
    assert_one_line_error(result, f"--output-dir {out}", "cannot write there")
    assert list(read_only_dir.iterdir()) == []
