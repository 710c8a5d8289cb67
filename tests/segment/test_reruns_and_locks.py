"""Nothing lost across runs: a clip skipped for bad input is re-cut once its input is fixed (or with
--retry-skipped), concurrent runs on one output directory leave every clip complete, and run-level failures (no
readable zip, an unwritable output directory) exit 2 with one line."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.stages.segment.config import SegmentConfig
from pipeline.stages.segment.jobs import clip_lock_path, clip_record_path
from tests.cli_contract import assert_one_line_error, run_pipeline
from tests.fixtures.segment_fixtures import make_segments
from tests.fixtures.synthetic_fixtures import make_synthetic_repo
from tests.segment.test_faults import CAMERA, _parquet, _rewrite_zip

SIZE = (64, 36)
SIZE_FLAG = "64x36"


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory):
    """One chunk of three 4-s clips (3 segments each)."""
    return make_synthetic_repo(
        tmp_path_factory.mktemp("small"), n_chunks=1, clips_per_chunk=3, width=128, height=72, duration_s=4.0
    )


@pytest.fixture(scope="module")
def clean_run(small_repo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "segments"
    assert make_segments(small_repo.root, out, size=SIZE).done == 3
    return out


def _copy(repo, tmp_path: Path) -> Path:
    return Path(shutil.copytree(repo.root, tmp_path / "repo"))


def _segment_args(repo_root: Path, out: Path) -> list[str]:
    return ["segment", "--input-dir", repo_root, "--output-dir", out, "--max-clips", "0", "--size", SIZE_FLAG]


def _videos(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "video_segments").rglob("*.mp4"))}


def _manifest_clips(out: Path) -> dict[str, dict]:
    return {c["clip_id"]: c for c in json.loads((out / "metadata" / "manifest.json").read_text())["clips"]}


def _assert_same_as_clean(out: Path, clean: Path) -> None:
    assert (out / "metadata" / "segments.json").read_bytes() == (clean / "metadata" / "segments.json").read_bytes()
    assert _videos(out) == _videos(clean)
    assert not list(out.rglob("*.lock")) and not list(out.rglob("*.tmp")) and not list(out.rglob("*.stale"))


def test_fixed_input_is_recut_like_a_clean_run(small_repo, clean_run, tmp_path):
    repo = _copy(small_repo, tmp_path)
    victim = small_repo.clips[1].clip_id
    zip_path = repo / small_repo.chunk_path(CAMERA, 0).relative_to(small_repo.root)
    good = zip_path.read_bytes()

    def corrupt(name: str, data: bytes) -> bytes:
        if name.startswith(victim) and name.endswith(".mp4"):
            return bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)) + data[4096:]
        return data

    _rewrite_zip(zip_path, corrupt)
    out = tmp_path / "out"
    first = make_segments(repo, out, size=SIZE)
    assert (first.done, first.skipped) == (2, 1) and _manifest_clips(out)[victim]["status"] == "skipped"

    zip_path.write_bytes(good)  # the user puts the good zip back
    again = make_segments(repo, out, size=SIZE)
    assert (again.done, again.skipped, again.reused) == (3, 0, 2)
    assert _manifest_clips(out)[victim]["status"] == "done"
    _assert_same_as_clean(out, clean_run)


def test_retry_skipped_recuts_a_skipped_clip_with_unchanged_inputs(small_repo, clean_run, tmp_path):
    out = Path(shutil.copytree(clean_run, tmp_path / "out"))
    victim = small_repo.clips[0]
    record_path = clip_record_path(out, victim.chunk, victim.clip_id)
    record = json.loads(record_path.read_text())
    # As a transient failure (out of memory, a since-fixed bug) would have recorded it: same inputs, skipped.
    record.update(status="skipped", reason="decode failed (Cannot allocate memory)", segments=[], files={})
    record_path.write_text(json.dumps(record))
    shutil.rmtree(out / "video_segments" / "chunk_0000" / victim.clip_id)

    plain = run_pipeline(*_segment_args(small_repo.root, out))
    assert plain.code == 0, plain.err
    assert _manifest_clips(out)[victim.clip_id]["reason"] == "decode failed (Cannot allocate memory)"

    retried = run_pipeline(*_segment_args(small_repo.root, out), "--retry-skipped")
    assert retried.code == 0, retried.err
    assert "9 segments from 3 clips (2 already complete), 0 clips skipped" in retried.out
    _assert_same_as_clean(out, clean_run)


def test_the_signature_holds_every_setting_the_outputs_depend_on(tmp_path):
    config = SegmentConfig(input_dir=tmp_path, output_dir=tmp_path, target_hz=10.0, size=(64, 36))
    signature = config.signature()
    assert list(signature) == [
        "version",
        "camera",
        "cameras",
        "window_s",
        "stride_s",
        "horizon_s",
        "size",
        "target_hz",
        "targets",
        "history",
        "frames",
        "encode",
    ]
    assert (signature["version"], signature["target_hz"], signature["size"]) == (5, 10.0, [64, 36])


def test_records_of_the_old_signature_are_recut_once(small_repo, clean_run, tmp_path):
    out = Path(shutil.copytree(clean_run, tmp_path / "out"))
    paths = [clip_record_path(out, clip.chunk, clip.clip_id) for clip in small_repo.clips]
    for path in paths:
        record = json.loads(path.read_text())
        signature = record["signature"]
        assert (signature["version"], signature["target_hz"]) == (5, 30.0) and "fps" not in signature
        # Version 2 stored target_hz under "fps".
        signature.update(version=2, fps=signature.pop("target_hz"))
        path.write_text(json.dumps(record))

    recut = make_segments(small_repo.root, out, size=SIZE)
    assert (recut.done, recut.reused) == (3, 0)
    assert all(json.loads(path.read_text())["signature"]["version"] == 5 for path in paths)
    _assert_same_as_clean(out, clean_run)
    again = make_segments(small_repo.root, out, size=SIZE)
    assert (again.done, again.reused) == (3, 3)


def _write_lock(path: Path, pid: int, host: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host, "time": time.time(), "run": "another"}))


def _sentinel(out: Path, clip_id: str) -> Path:
    """A file the other run is writing in the clip's directory (it must survive our run)."""
    path = out / "video_segments" / "chunk_0000" / clip_id / f"{clip_id}_00.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"the other run's half-written segment")
    return path


def test_a_clip_locked_by_a_live_run_is_left_to_it_then_taken_over(small_repo, clean_run, tmp_path):
    out = tmp_path / "out"
    victim = small_repo.clips[1].clip_id
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        lock = clip_lock_path(out, 0, victim)
        _write_lock(lock, holder.pid, socket.gethostname())
        sentinel = _sentinel(out, victim)
        cmd = [sys.executable, "-m", "pipeline", *map(str, _segment_args(small_repo.root, out))]
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        others = [clip_record_path(out, 0, c.clip_id) for c in small_repo.clips if c.clip_id != victim]
        deadline = time.monotonic() + 120
        while not all(p.is_file() for p in others) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # it now waits for the locked clip
        assert run.poll() is None, run.communicate()
        assert sentinel.read_bytes() == b"the other run's half-written segment" and lock.is_file()
        assert not clip_record_path(out, 0, victim).exists()
    finally:
        holder.kill()
        holder.wait()
    stdout, stderr = run.communicate(timeout=120)  # the holder died: its stale lock is taken over
    assert run.returncode == 0, stderr
    assert "waiting for 1 clip(s) another run on this host is cutting" in stderr
    assert "9 segments from 3 clips" in stdout
    _assert_same_as_clean(out, clean_run)


def test_a_clip_locked_from_another_host_is_reported_and_untouched(small_repo, tmp_path):
    out = tmp_path / "out"
    victim = small_repo.clips[2].clip_id
    lock = clip_lock_path(out, 0, victim)
    _write_lock(lock, 1, "some-other-host.example")
    sentinel = _sentinel(out, victim)
    result = run_pipeline(*_segment_args(small_repo.root, out))
    assert result.code == 0, result.err
    assert "6 segments from 2 clips (0 already complete), 0 clips skipped, 1 left to another run" in result.out
    entry = _manifest_clips(out)[victim]
    assert entry["status"] == "locked"
    assert "pid 1 on host some-other-host.example" in entry["reason"] and str(lock) in entry["reason"]
    assert sentinel.read_bytes() == b"the other run's half-written segment" and lock.is_file()


def test_two_concurrent_runs_lose_no_clip(small_repo, clean_run, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline", *map(str, _segment_args(small_repo.root, out))]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(r.communicate(timeout=300), r.returncode) for r in runs]
    for (stdout, stderr), code in results:
        assert code == 0, stderr
        assert "9 segments from 3 clips" in stdout and "0 clips skipped" in stdout, stdout
    assert {c["status"] for c in _manifest_clips(out).values()} == {"done"}
    _assert_same_as_clean(out, clean_run)


def test_every_zip_unreadable_exits_2_with_one_line(small_repo, tmp_path):
    repo = _copy(small_repo, tmp_path)
    zip_path = repo / small_repo.chunk_path(CAMERA, 0).relative_to(small_repo.root)
    zip_path.write_bytes(b"this is not a zip file, whatever its name says" * 100)
    result = run_pipeline(*_segment_args(repo, tmp_path / "out"))
    line = assert_one_line_error(result, zip_path.name, "cannot read zip", "all 3 clip(s) skipped")
    assert "manifest.json" in line
    assert {c["status"] for c in _manifest_clips(tmp_path / "out").values()} == {"skipped"}


def test_one_unreadable_chunk_among_good_ones_is_not_a_failure(tmp_path):
    repo = make_synthetic_repo(tmp_path, n_chunks=2, clips_per_chunk=1, width=128, height=72, duration_s=3.0)
    repo.chunk_path(CAMERA, 1).write_bytes(b"not a zip")
    result = run_pipeline(*_segment_args(repo.root, tmp_path / "out"))
    assert result.code == 0, result.err
    assert "2 segments from 1 clips (0 already complete), 1 clips skipped" in result.out


def test_read_only_output_dir_exits_2_with_one_line(small_repo, read_only_dir):
    result = run_pipeline(*_segment_args(small_repo.root, read_only_dir))
    assert_one_line_error(result, "--output-dir", str(read_only_dir), "cannot write there")


def test_conflicting_duplicate_egomotion_rows_are_recorded(small_repo, tmp_path):
    repo = _copy(small_repo, tmp_path)
    victim = small_repo.clips[0].clip_id

    def duplicate(name: str, data: bytes) -> bytes:
        if not name.startswith(victim):
            return data
        df = pd.read_parquet(io.BytesIO(data))
        return _parquet(pd.concat([df, df.iloc[50:53].assign(vx=lambda d: d.vx + 2.0)]))

    ego_zip = repo / small_repo.chunk_path("egomotion", 0).relative_to(small_repo.root)
    _rewrite_zip(ego_zip, duplicate)
    out = tmp_path / "out"
    make_segments(repo, out, size=SIZE)
    clips = _manifest_clips(out)
    (warning,) = clips[victim]["warnings"]
    assert "3 repeated timestamp(s) with different values" in warning and "the first row of each was kept" in warning
    assert all(c["warnings"] == [] for cid, c in clips.items() if cid != victim)
