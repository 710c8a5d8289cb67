"""`predictions.jsonl` of a served run: a last answer whose newline was never written is kept and its line ended,
so the next answers do not run into it; a full disk while appending is one line (PipelineError, exit 2)."""

from __future__ import annotations

import builtins
import errno
import json
import os

import pytest

from pipeline.core.errors import PipelineError
from pipeline.stages.evaluate.serving_client import PredictionLog


def test_a_last_line_without_its_newline_is_ended_and_resume_goes_on(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "1,2"}) + "\n" + json.dumps({"id": "b", "text": "3,4"}))
    log = PredictionLog(path)
    assert log.done == {"a": "1,2", "b": "3,4"}
    log.append("c", "5,6")
    assert PredictionLog(path).done == {"a": "1,2", "b": "3,4", "c": "5,6"}  # the run after that reads it too


def test_a_line_cut_short_is_dropped(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "1,2"}) + '\n{"id": "b", "te')
    log = PredictionLog(path)
    log.append("b", "3,4")
    assert PredictionLog(path).done == {"a": "1,2", "b": "3,4"}


def test_a_full_disk_while_appending_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "predictions.jsonl"
    log = PredictionLog(path)
    real_open = builtins.open

    def full(file, mode="r", *args, **kwargs):
        if str(file) == str(path) and "a" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    with pytest.raises(PipelineError) as err:
        log.append("a", "1,2")
    assert str(err.value) == f"{path}: cannot append the answer of a (No space left on device)"


def test_k_answers_are_stored_and_read_back_and_a_bad_list_is_refused(tmp_path):
    path = tmp_path / "predictions.jsonl"
    PredictionLog(path).append("a", "1,2", ["1,2", "3,4"])
    PredictionLog(path).append("b", "5,6")
    log = PredictionLog(path)
    assert log.done == {"a": "1,2", "b": "5,6"} and log.samples == {"a": ["1,2", "3,4"]}
    path.write_text(json.dumps({"id": "c", "text": "1,2", "samples": ["1,2", 3]}) + "\n")
    with pytest.raises(PipelineError, match="line 1 is not an answer"):
        PredictionLog(path)
