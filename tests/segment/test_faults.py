"""Bad input skips the clip (or the segment) with a one-line reason while the others finish; re-runs rewrite nothing;
bad arguments exit 2 with one line."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.fixtures.segment_fixtures import make_segments
from tests.fixtures.synthetic_fixtures import make_synthetic_repo

CAMERA = "camera_front_wide_120fov"
# Clip order in the fault repository (index in chunk -> fault).
FAULTS = [
    "good",  # egomotion rows duplicated: dropped, the clip is fine
    "truncated_mp4",
    "corrupt_mp4",
    "missing_member",
    "timestamps_disagree",
    "egomotion_nan",
    "egomotion_gap",
    "duplicate_frame_timestamps",
    "short_clip",
]


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _rewrite_zip(path: Path, edit) -> None:
    """Rewrite a stored zip, passing each member through `edit(name, data) -> bytes | None` (None drops it)."""
    with zipfile.ZipFile(path) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            new = edit(name, data)
            if new is not None:
                zf.writestr(name, new)


@pytest.fixture(scope="module")
def fault_repo(tmp_path_factory):
    """One chunk of 4-s clips at 128x72, each clip (but the first) broken in one way."""
    tmp = tmp_path_factory.mktemp("faults")
    repo = make_synthetic_repo(tmp, n_chunks=1, clips_per_chunk=len(FAULTS), width=128, height=72, duration_s=4.0)
    short = make_synthetic_repo(
        tmp, output_dir=tmp / "short", n_chunks=1, clips_per_chunk=1, width=128, height=72, duration_s=1.5
    )
    clip_of = {fault: repo.clips[i].clip_id for i, fault in enumerate(FAULTS)}
    short_id = short.clips[0].clip_id

    def short_member(feature: str, alias: str) -> bytes:
        with zipfile.ZipFile(short.chunk_path(feature, 0)) as zf:
            return zf.read(short.member(feature, alias, short_id))

    def edit_camera(name: str, data: bytes) -> bytes | None:
        cid, kind = name.split(".", 1)
        if cid == clip_of["truncated_mp4"] and kind.endswith(".mp4"):
            return data[: len(data) * 2 // 5]
        if cid == clip_of["corrupt_mp4"] and kind.endswith(".mp4"):
            return bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)) + data[4096:]
        if cid == clip_of["missing_member"] and kind.endswith(".mp4"):
            return None
        if cid == clip_of["timestamps_disagree"] and kind.endswith(".timestamps.parquet"):
            return _parquet(pd.read_parquet(io.BytesIO(data)).iloc[:-10])
        if cid == clip_of["duplicate_frame_timestamps"] and kind.endswith(".timestamps.parquet"):
            df = pd.read_parquet(io.BytesIO(data))
            df.loc[5, "timestamp"] = df.loc[4, "timestamp"]
            return _parquet(df)
        if cid == clip_of["short_clip"]:
            alias = "video" if kind.endswith(".mp4") else "frame_timestamps" if "timestamps" in kind else None
            return short_member(CAMERA, alias) if alias else data
        return data

    def edit_egomotion(name: str, data: bytes) -> bytes:
        cid = name.split(".", 1)[0]
        df = pd.read_parquet(io.BytesIO(data))
        if cid == clip_of["good"]:
            return _parquet(pd.concat([df, df.iloc[100:140]]).sort_values("timestamp", kind="stable"))
        if cid == clip_of["egomotion_nan"]:
            df.loc[(df.timestamp - 2_500_000).abs().idxmin(), "vx"] = np.nan
            return _parquet(df)
        if cid == clip_of["egomotion_gap"]:
            return _parquet(df[(df.timestamp < 600_000) | (df.timestamp > 950_000)])
        if cid == clip_of["short_clip"]:
            return short_member("egomotion", "egomotion")
        return data

    _rewrite_zip(repo.chunk_path(CAMERA, 0), edit_camera)
    _rewrite_zip(repo.chunk_path("egomotion", 0), edit_egomotion)
    return repo, clip_of


@pytest.fixture(scope="module")
def fault_run(fault_repo, tmp_path_factory):
    repo, clip_of = fault_repo
    out = tmp_path_factory.mktemp("fault_out") / "segments"
    summary = make_segments(repo.root, out, size=(64, 36))
    manifest = json.loads((out / "metadata" / "manifest.json").read_text())
    return (
        out,
        summary,
        {fault: next(c for c in manifest["clips"] if c["clip_id"] == cid) for fault, cid in clip_of.items()},
    )


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("truncated_mp4", "truncated or corrupt|decode failed|cannot open"),
        ("corrupt_mp4", "cannot open video|decode failed"),
        ("missing_member", r"member .*\.mp4 is missing"),
        ("timestamps_disagree", "video has 120 frames but the timestamps file has 110 rows"),
        ("duplicate_frame_timestamps", "not strictly increasing"),
        ("short_clip", r"clip is 1\.50 s long, shorter than window \+ horizon \(2\.00 s\)"),
    ],
)
def test_fault_skips_the_clip_with_its_reason(fault_run, fault, reason):
    out, _, clips = fault_run
    entry = clips[fault]
    assert entry["status"] == "skipped" and entry["segments"] == 0
    assert "\n" not in entry["reason"]
    assert pd.Series([entry["reason"]]).str.contains(reason).all(), entry["reason"]
    assert not list((out / "video_segments").rglob(f"{entry['clip_id']}*"))


def test_egomotion_faults_skip_only_the_touched_segments(fault_run):
    _, _, clips = fault_run
    nan, gap = clips["egomotion_nan"], clips["egomotion_gap"]
    # 4-s clips hold 3 segments (ends at 1, 2, 3 s); each needs egomotion over [end - 1 s + 1/30 s, end + 1 s].
    assert nan["status"] == "done" and nan["segments"] == 1
    assert [s["segment_index"] for s in nan["skipped_segments"]] == [1, 2]
    assert all("NaN" in s["reason"] for s in nan["skipped_segments"])
    assert gap["status"] == "done" and gap["segments"] == 2
    assert [s["segment_index"] for s in gap["skipped_segments"]] == [0]
    assert "gap of 0.3" in gap["skipped_segments"][0]["reason"] and "> 0.2 s" in gap["skipped_segments"][0]["reason"]


def test_good_clip_finishes_despite_the_others(fault_run):
    out, summary, clips = fault_run
    good = clips["good"]
    assert good["status"] == "done" and good["segments"] == 3 and good["skipped_segments"] == []
    assert summary.clips == len(FAULTS) and summary.skipped == 6 and summary.done == 3
    segments = json.loads((out / "metadata" / "segments.json").read_text())
    assert len(segments) == 3 + 1 + 2
    assert not list(out.rglob("*.tmp"))


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_rerun_rewrites_nothing(fault_run, fault_repo):
    out, _, _ = fault_run
    before = _snapshot(out)
    summary = make_segments(fault_repo[0].root, out, size=(64, 36))
    assert summary.reused == len(FAULTS)
    assert _snapshot(out) == before


def test_rerun_redoes_a_clip_whose_segment_vanished(fault_run, fault_repo):
    out, _, _ = fault_run
    segments = json.loads((out / "metadata" / "segments.json").read_text())
    victim = out / segments[0]["video"]
    data = victim.read_bytes()
    victim.unlink()
    summary = make_segments(fault_repo[0].root, out, size=(64, 36))
    assert summary.reused == len(FAULTS) - 1
    assert victim.read_bytes() == data  # x264 and the mp4 muxer are deterministic at a fixed thread count


def test_two_workers_give_the_same_table(fault_run, fault_repo, tmp_path):
    out, _, _ = fault_run
    summary = make_segments(fault_repo[0].root, tmp_path / "w2", size=(64, 36), workers=2)
    assert summary.done == 3
    assert (tmp_path / "w2" / "metadata" / "segments.json").read_bytes() == (
        out / "metadata" / "segments.json"
    ).read_bytes()
    ours, ref = (json.loads((d / "metadata" / "manifest.json").read_text())["clips"] for d in (tmp_path / "w2", out))
    # Workers decode single-threaded: libavcodec then reports the truncated file as a decode error instead of a
    # short read, so only that reason's wording may differ.
    for a, b in zip(ours, ref, strict=True):
        assert {**a, "reason": None} == {**b, "reason": None}
        assert (a["reason"] is None) == (b["reason"] is None)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `pipeline segment ARGS` in-process the way the console script does: (exit code, stdout, stderr)."""
    from pipeline.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main(["segment", *args])
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "100"], "--size '100'"),
        (["--size", "101x50"], "must be even"),
        (["--shard", "3/2"], "--shard '3/2'"),
        (["--window", "0"], "--window 0.0"),
        (["--workers", "0"], "--workers 0"),
        (["--max_clips", "-1"], "--max-clips -1"),
        (["--input_dir", "/nonexistent/dir"], "no features.csv"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message, tmp_path, capsys):
    code, _, err = run_cli(capsys, *args, "--output-dir", str(tmp_path / "o"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], err


def test_cli_runs_with_underscore_flags(fault_repo, tmp_path, capsys):
    repo, _ = fault_repo
    args = ["--input_dir", str(repo.root), "--output_dir", str(tmp_path / "o"), "--max_clips", "1", "--size", "64x36"]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    # --max_clips 1 takes the first clip id in sorted order: the short clip, skipped.
    manifest = json.loads((tmp_path / "o" / "metadata" / "manifest.json").read_text())
    assert [c["clip_id"] for c in manifest["clips"]] == [min(c.clip_id for c in repo.clips)]
    assert "0 segments from 0 clips (0 already complete), 1 clips skipped" in out


def test_unknown_chunk_is_a_usage_error(fault_repo, tmp_path, capsys):
    args = ["--input-dir", str(fault_repo[0].root), "--output-dir", str(tmp_path / "o"), "--chunk", "7"]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "--chunk: unknown chunk id(s) 7" in err, err


def test_shards_are_disjoint_and_cover_the_clips(fault_repo, tmp_path):
    from pipeline.stages.segment.config import SegmentConfig
    from pipeline.stages.segment.jobs import list_jobs

    repo, _ = fault_repo

    def ids(**kw):
        return [j.clip_id for j in list_jobs(SegmentConfig(input_dir=repo.root, output_dir=tmp_path, **kw))]

    everything = ids(max_clips=None)
    assert everything == sorted(c.clip_id for c in repo.clips)
    shards = [ids(max_clips=None, shard=(i, 3)) for i in range(3)]
    assert sorted(sum(shards, [])) == everything and all(len(s) == 3 for s in shards)
    assert ids(max_clips=None, shard=(1, 3)) == shards[1]  # deterministic
    assert ids(max_clips=2, shard=(1, 3)) == shards[1][:2]
    assert ids(max_clips=None, chunks=(0,)) == everything


def test_changed_settings_recut_the_clips(fault_run, fault_repo, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(fault_run[0], out)
    summary = make_segments(fault_repo[0].root, out, size=(32, 18))
    assert summary.reused == 0 and summary.done == 3
    segments = json.loads((out / "metadata" / "segments.json").read_text())
    assert {(s["width"], s["height"]) for s in segments} == {(32, 18)}
    assert len(list((out / "video_segments").rglob("*.mp4"))) == len(segments)


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGKILL"])
def test_a_worker_stopped_mid_clip_costs_that_clip_one_attempt(synthetic_repo, tmp_path, signum):
    """A pool worker stopped (SIGTERM: it removes its partial segments) or killed (SIGKILL: nothing runs) while a clip
    has segments but no record: the clip is cut again on a new worker, and the run completes with every clip."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "pipeline", "segment", "--input-dir", str(synthetic_repo.root)]
    cmd += ["--output-dir", str(out), "--max-clips", "0", "--size", "128x72", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)

    def orphans() -> set[str]:
        recorded = {p.stem for p in out.glob("metadata/clips/*/*.json")}
        return {p.parent.name for p in out.glob("video_segments/*/*/*.mp4")} - recorded

    deadline = time.monotonic() + 120
    while not (cut := orphans()) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    parent = psutil.Process(proc.pid)
    workers = [c for c in parent.children() if c.cmdline() == parent.cmdline()]
    assert cut and workers, "no clip in progress, or no pool worker found"
    for worker in workers:  # both: the one cutting the clip seen is one of them
        os.kill(worker.pid, getattr(signal, signum))
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()
    assert "trying the clip again" in stderr.decode()
    assert not orphans() and not list(out.rglob("*.tmp"))
    manifest = json.loads((out / "metadata" / "manifest.json").read_text())
    assert [c["status"] for c in manifest["clips"]] == ["done"] * len(synthetic_repo.clips)
    segments = json.loads((out / "metadata" / "segments.json").read_text())
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4")) == sorted(s["video"] for s in segments)


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_leaves_no_half_written_segment(synthetic_repo, tmp_path, workers):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "pipeline", "segment", "--input-dir", str(synthetic_repo.root)]
    cmd += ["--output-dir", str(out), "--max-clips", "0", "--size", "128x72", "--workers", str(workers)]
    # SIGINT back to its default in the child (a background parent may ignore it), in its own process group.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL), os.setsid()),
    )
    deadline = time.monotonic() + 60
    while not list(out.glob("metadata/clips/*/*.json")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    records = list(out.glob("metadata/clips/*/*.json"))
    assert proc.returncode != 0 and 0 < len(records) < len(synthetic_repo.clips)  # interrupted mid-run
    assert not list(out.rglob("*.tmp"))
    # Every mp4 left belongs to a clip whose record was written (an interrupted clip's segments are removed).
    finished = {p.stem for p in records}
    assert {p.parent.name for p in out.rglob("*.mp4")} <= finished
    summary = make_segments(synthetic_repo.root, out, size=(128, 72))
    assert summary.reused == len(records) and summary.done == len(synthetic_repo.clips)
