"""Benchmark of the segment stage (not a test): one run, prints figures for the README.

On a synthetic 1920x1080 30 fps 20-s H.264 clip (pipeline.standins, read in place from its chunk zip):
  decode-only     threaded PyAV decode of every frame (the physical floor of any one-pass cut)
  ours            pipeline.av.video.cut_segments: one decode, resize once, 19 x 1-s segments at the stage defaults
  naive           19 x (open, seek to second i, decode that second, re-encode it at full resolution)
plus the ratios, the peak RSS of `pipeline segment` on that clip and on a small and a larger chunk (flat in chunk
size), and clips/s with --workers 2 vs 1 on small clips. Goals: ours <= 1.25x decode-only, naive/ours >= 5x,
peak RSS < 2 GiB, workers 2 >= 1.7x workers 1. A 4-camera case (`--cameras-only` runs just it) cuts one clip of four
cameras with `--cameras` and prints cut / 4-camera decode-only (goal <= 1.3). Timings are wall clock on whatever else
the machine is running.

    uv run python benchmarks/segment_bench.py [--work-dir DIR] [--cameras-only]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from pipeline.av import egomotion as ego
from pipeline.av import video
from pipeline.stages.segment.config import SegmentConfig
from pipeline.stages.segment.stage import run
from pipeline.standins.repo import SynthResult, plan_clips, write_repo
from pipeline.standins.synth_config import DEFAULT_CAMERA, SynthConfig


def synthetic_repo(config: SynthConfig) -> SynthResult:
    """Write the repository, or reuse one a previous run left in --work-dir (1080p rendering takes minutes)."""
    if (config.output_dir / "clip_index.parquet").is_file():
        return SynthResult(root=config.output_dir, config=config, clips=tuple(plan_clips(config)))
    return write_repo(config)


def hd_repo(work: Path) -> SynthResult:
    return synthetic_repo(
        SynthConfig(output_dir=work / "hd", n_chunks=1, clips_per_chunk=1, width=1920, height=1080, duration_s=20.0)
    )


def clip_inputs(repo: SynthResult, camera: str = DEFAULT_CAMERA) -> tuple[video.ZipMember, np.ndarray]:
    clip = repo.clips[0]
    zip_path = repo.chunk_path(camera, clip.chunk)
    with zipfile.ZipFile(zip_path) as zf:
        ts = pd.read_parquet(io.BytesIO(zf.read(repo.member(camera, "frame_timestamps", clip.clip_id))))
    member = video.locate_member(zip_path, repo.member(camera, "video", clip.clip_id))
    return member, ts["timestamp"].to_numpy().astype(np.int64)


# Alpamayo's default cameras.
FOUR_CAMERAS = (
    "camera_cross_left_120fov",
    "camera_front_wide_120fov",
    "camera_cross_right_120fov",
    "camera_front_tele_30fov",
)


def four_camera_case(work: Path, repeats: int) -> None:
    """One 960x540 20-s clip of four cameras: the stage's cut with --cameras (in-process) against decoding the four
    videos and nothing else; the best of `repeats` alternated runs of each."""
    t0 = time.perf_counter()
    repo = synthetic_repo(
        SynthConfig(
            output_dir=work / "four", n_chunks=1, clips_per_chunk=1, width=960, height=540, cameras=FOUR_CAMERAS
        )
    )
    print(f"4 cameras: one 960x540 20-s clip each (generated in {time.perf_counter() - t0:.0f} s)")
    members = [clip_inputs(repo, camera)[0] for camera in FOUR_CAMERAS]
    out = work / "stage_four"
    config = SegmentConfig(input_dir=repo.root, output_dir=out, max_clips=1, cameras=FOUR_CAMERAS)
    decode_runs, cut_runs = [], []
    for _ in range(repeats):
        decode_runs.append(timed(lambda: [video.decode_only(m) for m in members]))
        shutil.rmtree(out, ignore_errors=True)
        cut_runs.append(timed(lambda: run(config)))
    # Wall clock only: the stage cuts in a worker process, whose CPU time this process's rusage does not see.
    (t_decode, _, _), (t_cut, _, _) = min(decode_runs), min(cut_runs)
    print(f"  4-camera decode-only: {t_decode:.2f} s wall")
    print(f"  4-camera cut (pipeline segment --cameras, 19 windows at 448x252): {t_cut:.2f} s wall")
    print(f"  cut / 4-camera decode-only = {t_cut / t_decode:.2f} wall (goal <= 1.3)")


def windows(ts: np.ndarray) -> list[tuple[int, int, int]]:
    """(index, first frame, stop frame) of the default 1-s segments, as the stage computes them."""
    start, dt, end = ego.clip_timing(ts)
    s, e = ego.segment_windows(start, end, 1.0, 1.0, 1.0, tolerance_us=dt // 2)
    r = ego.frames_in_windows(ts, s - dt // 2, e - dt // 2)
    return [(i, int(a), int(b)) for i, (a, b) in enumerate(r)]


def naive_cut(member: video.ZipMember, ts: np.ndarray, out: Path) -> None:
    """The naive way: per segment open, seek, decode the second, re-encode it at full resolution (veryfast)."""
    for i, first, stop in windows(ts):
        with video.open_video(member) as src:
            stream = src.streams.video[0]
            stream.thread_type = "AUTO"
            src.seek(int((ts[first] - ts[0]) / 1e6 / stream.time_base), stream=stream, backward=True)
            with av.open(str(out / f"naive_{i:02d}.mp4"), "w") as dst:
                enc = dst.add_stream("libx264", rate=30, options={"preset": "veryfast"})
                enc.width, enc.height, enc.pix_fmt = stream.width, stream.height, "yuv420p"
                enc.time_base = Fraction(1, 1_000_000)
                for frame in src.decode(stream):
                    t = int(round(frame.pts * frame.time_base * 30))  # the synthetic pts are frame numbers
                    if t >= stop:
                        break
                    if t >= first:
                        frame.pts = int(ts[t] - ts[first])
                        frame.time_base = Fraction(1, 1_000_000)
                        for packet in enc.encode(frame):
                            dst.mux(packet)
                for packet in enc.encode(None):
                    dst.mux(packet)


def timed(fn):
    """(wall s, CPU s of this process incl. all threads, result) of one call."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, t0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return wall, usage.ru_utime + usage.ru_stime - cpu0, result


def run_stage(input_dir: Path, output_dir: Path, *args: str) -> tuple[float, float]:
    """Run `pipeline segment` in a fresh process: (wall seconds, peak RSS in MiB summed over it and its workers).

    RSS is sampled every 20 ms with psutil (getrusage's ru_maxrss survives fork + exec on Linux, so a child
    would report this benchmark's own peak).
    """
    import psutil

    shutil.rmtree(output_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline", "segment", "--input-dir", str(input_dir), "--output-dir", str(output_dir)]
    t0 = time.perf_counter()
    log_path = output_dir.with_name(output_dir.name + ".log")
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed below, after the process ends
    proc = psutil.Popen([*cmd, *args], stdout=subprocess.DEVNULL, stderr=log_file)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                total += p.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    log_file.close()
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline segment failed, see {log_path}")
    return wall, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None, help="Scratch directory (default: a temp dir).")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of decode-only and ours (best kept).")
    parser.add_argument("--chunk-clips", type=int, default=8, help="Clips in the small-clip chunk.")
    parser.add_argument("--cameras-only", action="store_true", help="Run only the 4-camera case.")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="segment_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"work dir {work}; {len(os.sched_getaffinity(0))} cores; load average {load} (a shared machine)")
    if args.cameras_only:
        four_camera_case(work, args.repeats)
        return

    t0 = time.perf_counter()
    repo = hd_repo(work)
    member, ts = clip_inputs(repo)
    mbps = member.size * 8 / ((ts[-1] - ts[0]) / 1e6) / 1e6
    print(f"source: 1920x1080, {len(ts)} frames, {mbps:.1f} Mbit/s (generated in {time.perf_counter() - t0:.0f} s)")

    settings = SegmentConfig().encode_settings()
    out = work / "ours"
    out.mkdir(exist_ok=True)
    requests = [video.SegmentRequest(i, a, b, out / f"seg_{i:02d}.mp4") for i, a, b in windows(ts)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Alternate the two and keep the best of each: other people's jobs on a shared machine only ever add time.
    fast = SegmentConfig(fast_decode=True).encode_settings()
    decode_runs, ours_runs, fast_runs = [], [], []
    for _ in range(args.repeats):
        decode_runs.append(timed(lambda: video.decode_only(member)))
        ours_runs.append(timed(lambda: video.cut_segments(member, ts, requests, settings)))
        fast_runs.append(timed(lambda: video.cut_segments(member, ts, requests, fast)))
    (t_decode, cpu_decode, n), (t_ours, cpu_ours, written) = min(decode_runs), min(ours_runs)
    print(f"decode-only: {t_decode:.2f} s wall ({n / t_decode:.0f} fps), {cpu_decode:.2f} s CPU")
    size_kb = np.mean([w.size_bytes for w in written]) / 1024
    print(
        f"ours: {t_ours:.2f} s wall ({len(ts) / t_ours:.0f} source fps), {cpu_ours:.2f} s CPU for {len(written)} "
        f"segments at {settings.size[0]}x{settings.size[1]} ({settings.preset}, {settings.interpolation}), "
        f"{size_kb:.0f} KiB each"
    )
    t_fast, cpu_fast, _ = min(fast_runs)
    print(
        f"ours --fast-decode: {t_fast:.2f} s wall, {cpu_fast:.2f} s CPU: {t_fast / t_decode:.2f} x decode-only wall, "
        f"{cpu_fast / cpu_decode:.2f} x CPU"
    )
    runs = {"decode-only": decode_runs, "ours": ours_runs, "fast": fast_runs}
    print("  every run, wall s: " + ", ".join(f"{k} {[round(r[0], 2) for r in v]}" for k, v in runs.items()))

    naive_dir = work / "naive"
    naive_dir.mkdir(exist_ok=True)
    t_naive, cpu_naive, _ = timed(lambda: naive_cut(member, ts, naive_dir))
    print(f"naive: {t_naive:.2f} s wall, {cpu_naive:.2f} s CPU (19 x open + seek + decode 1 s + re-encode at 1080p)")
    print(
        f"ratios: ours / decode-only = {t_ours / t_decode:.2f} wall (goal <= 1.25), {cpu_ours / cpu_decode:.2f} CPU; "
        f"naive / ours = {t_naive / t_ours:.1f} wall (goal >= 5), {cpu_naive / cpu_ours:.1f} CPU"
    )
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS of this process: {rss_before / 1024:.0f} MiB before ours, {rss_after / 1024:.0f} MiB after naive")

    wall, rss = run_stage(repo.root, work / "stage_hd", "--max-clips", "1")
    print(f"`pipeline segment` on the 1080p clip: {wall:.1f} s incl. start-up, peak RSS {rss:.0f} MiB (goal < 2048)")

    t0 = time.perf_counter()
    small = synthetic_repo(
        SynthConfig(output_dir=work / "small", n_chunks=1, clips_per_chunk=args.chunk_clips, width=384, height=216)
    )
    took = time.perf_counter() - t0
    print(f"small chunk: {args.chunk_clips} clips of 384x216 x 20 s, cut to 224x128 (generated in {took:.0f} s)")
    for clips in (3, args.chunk_clips):
        wall, rss = run_stage(small.root, work / "stage_small", "--max-clips", str(clips), "--size", "224x128")
        print(f"  --max-clips {clips:3d}: peak RSS {rss:.0f} MiB, {wall:.1f} s")
    speed = {}
    for workers in (1, 2):
        # In-process, so interpreter start-up does not count; workers fork in milliseconds.
        out_w = work / f"stage_w{workers}"
        shutil.rmtree(out_w, ignore_errors=True)
        config = SegmentConfig(
            input_dir=small.root, output_dir=out_w, max_clips=None, size=(224, 128), workers=workers
        )
        wall, cpu, _ = timed(lambda config=config: run(config))
        speed[workers] = args.chunk_clips / wall
        print(f"  --workers {workers}: {speed[workers]:.2f} clips/s ({wall:.1f} s)")
    print(f"workers 2 / workers 1 = {speed[2] / speed[1]:.2f} (goal >= 1.7)")
    four_camera_case(work, args.repeats)
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
