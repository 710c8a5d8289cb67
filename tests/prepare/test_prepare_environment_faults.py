"""A full disk (or any fault of the machine) during `pipeline prepare` is never a clip's fault: the run stops with one
line naming the path (exit 2), nothing is recorded as skipped, the chunk's zips are kept, and a re-run finishes.
Also `prepare --retry-skipped`, and a run in which every chunk download failed (exit 2, not "0 segments")."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import av
import pytest

from pipeline.av import video
from pipeline.core.errors import VideoError
from pipeline.stages.download import transfer as download_transfer
from pipeline.standins.repo import DEFAULT_CAMERA
from tests.cli_contract import assert_one_line_error, run_in_process


def _prepare(capsys, root: Path, *extra: object):
    return run_in_process(
        capsys, "prepare", "--all", "--source-dir", root / "src", "--output-dir", root / "out",
        "--size", "64x36", "--workers", "2", *extra,
    )  # fmt: skip


def _records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "metadata" / "clips").rglob("*.json"))]


def _encoder_disk_full(*args, **kwargs):
    av.error.err_check(-errno.ENOSPC)  # what libx264's muxer raises when the output disk is full


def test_full_disk_while_encoding_stops_keeps_the_zips_and_a_rerun_finishes(small_hub, tmp_path, capsys, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(video, "_encode", _encoder_disk_full)
        result = _prepare(capsys, tmp_path)
    line = assert_one_line_error(result, str(tmp_path / "out"), "No space left on device")
    assert "decode failed" not in result.err and "skipped" not in line
    assert [r for r in _records(tmp_path / "out") if r["status"] == "skipped"] == []  # never recorded as a skip
    assert list((tmp_path / "src").rglob("*.zip"))  # the chunk's sources are kept for the re-run

    again = _prepare(capsys, tmp_path)  # space freed
    assert again.code == 0, again.err
    records = _records(tmp_path / "out")
    assert [r["status"] for r in records] == ["done"] * 4
    assert sum(len(r["segments"]) for r in records) == 12
    assert list((tmp_path / "src").rglob("*.zip")) == []


def test_full_disk_while_downloading_stops_the_prepare_run(small_hub, tmp_path, capsys, monkeypatch):
    open_partial = download_transfer._open_partial

    def full(path: Path):  # the index files fit; the disk fills with the first chunk zip
        if ".chunk_" in path.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open_partial(path)

    monkeypatch.setattr(download_transfer, "_open_partial", full)
    result = _prepare(capsys, tmp_path)
    assert_one_line_error(result, "no space left on device", str(tmp_path / "src"))
    assert "segments" not in result.out


def test_every_chunk_download_failing_exits_2(small_hub, small_repo, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(download_transfer, "RETRY_PAUSE_S", 0.0)
    for chunk in (0, 1):
        path = small_repo.chunk_path(DEFAULT_CAMERA, chunk).relative_to(small_repo.root).as_posix()
        small_hub.inject_status(path, 404, times=100)
    result = _prepare(capsys, tmp_path, "--retries", "0")
    assert_one_line_error(result, "every chunk download failed (2 chunk(s))", "HTTP 404")


@pytest.mark.parametrize("retry", [False, True])
def test_retry_skipped_cuts_skipped_clips_again(small_hub, tmp_path, capsys, monkeypatch, retry):
    def broken(source, *args, **kwargs):
        raise VideoError(f"{source.name}: decode failed (Invalid data found when processing input)")

    with monkeypatch.context() as patch:
        patch.setattr("pipeline.stages.segment.clip.cut_segments", broken)
        first = _prepare(capsys, tmp_path, "--keep-source")
    assert first.code == 0, first.err
    assert [r["status"] for r in _records(tmp_path / "out")] == ["skipped"] * 4

    again = _prepare(capsys, tmp_path, *(["--retry-skipped"] if retry else []))
    assert again.code == 0, again.err
    expected = "done" if retry else "skipped"
    assert [r["status"] for r in _records(tmp_path / "out")] == [expected] * 4
