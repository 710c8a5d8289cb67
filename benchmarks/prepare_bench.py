"""Benchmark of `pipeline prepare` on the local and the Ray engine (not a test): one run, prints ratios.

Default run, on a synthetic repository served by the local Hub server (`--chunks` x `--clips-per-chunk` clips):
  local          `--engine local --workers N` over every chunk: clips/s, and the peak bytes of source zips on disk
                 (sampled every 20 ms) over the largest chunk's bytes (goal: <= --max-chunks-in-flight)
  ray start-up   a local Ray cluster of N CPUs started in-process, and its worker warm-up (`RayEngine` imports
                 the work's modules in every worker process as it starts), on their own line
  ray            `--engine ray` (joining that cluster) on the same clips: clips/s
  driver RSS     (the first cluster only) `pipeline prepare --engine ray --ray-address <that cluster>` as a child
                 process over 2 chunks and over 8 chunks, each reporting its own peak RSS; 8 / 2 (goal <= 1.2)
  ratio          cluster start-up, Ray run and a local run (the cluster stopped) are repeated `--repeats` times after
                 a first local run; ray / local clips/s (goal >= 0.9) is the mean seconds of the local runs over the
                 mean of the Ray runs, and each Ray run's ratio against the local runs around it shows the spread
`--simulate` instead runs only the Ray engine over a larger repository (default 8 chunks x 64 clips at 320x180) and
prints the throughput of each chunk in completion order, the first half vs the second half (throughput holds if the
ratio is ~1), and the engine's per-clip overhead: wall x CPUs / clips minus the mean time a clip spends in its task.
`--hd` measures one 1920x1080 clip (20 s): source bytes, cut CPU seconds on one core, output bytes per segment.
Timings are wall clock on whatever else the machine is running.

    uv run python benchmarks/prepare_bench.py [--work-dir DIR] [--workers 2] [--repeats 3]
    uv run python benchmarks/prepare_bench.py --simulate [--chunks 8 --clips-per-chunk 64 --size 320x180]
    uv run python benchmarks/prepare_bench.py --hd
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pipeline.engines.local import LocalEngine
from pipeline.engines.ray_engine import RayEngine
from pipeline.stages.prepare import stage as prepare
from pipeline.stages.segment.clip import process_clip_safe
from pipeline.stages.segment.config import SegmentConfig, parse_size
from pipeline.standins.hub_server import serve_repo
from pipeline.standins.repo import DEFAULT_CAMERA, SynthConfig, SynthResult, plan_clips, write_repo

OUT_SIZE = (224, 128)


def synthetic_repo(config: SynthConfig) -> SynthResult:
    """Write the repository, or reuse one a previous run left in --work-dir."""
    if (config.output_dir / "clip_index.parquet").is_file():
        return SynthResult(root=config.output_dir, config=config, clips=tuple(plan_clips(config)))
    return write_repo(config)


def args_repo(args: argparse.Namespace, work: Path, prefix: str) -> SynthResult:
    """The repository of `--chunks` x `--clips-per-chunk` clips of `--size` and `--duration`, in `work`."""
    width, height = parse_size(args.size)
    name = f"{prefix}_{args.chunks}x{args.clips_per_chunk}_{args.size}_{args.duration:g}s"
    return synthetic_repo(
        SynthConfig(
            output_dir=work / name,
            n_chunks=args.chunks,
            clips_per_chunk=args.clips_per_chunk,
            width=width,
            height=height,
            duration_s=args.duration,
            frame_code=False,
        )
    )


class DiskPeak:
    """Samples the bytes of *.zip files (complete or partial) under a directory every 20 ms, in a thread."""

    def __init__(self, root: Path) -> None:
        self.root, self.peak, self._stop = root, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for path in list(self.root.rglob("*")):
                if ".zip" in path.name:
                    with contextlib.suppress(OSError):  # a partial file renamed or deleted meanwhile
                        total += path.stat().st_size
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def config_for(root: Path, workers: int, chunks: str | None, in_flight: int = 2) -> prepare.PrepareConfig:
    seg = SegmentConfig(
        input_dir=root / "src", output_dir=root / "out", max_clips=None, size=OUT_SIZE, workers=workers
    )
    chunk_args = {"chunks": (chunks,)} if chunks else {"all_chunks": True}
    return prepare.PrepareConfig(segment=seg, max_chunks_in_flight=in_flight, **chunk_args)


def start_cluster(cpus: int) -> RayEngine:
    """A local Ray cluster of `cpus` CPUs, started in-process; prints its start-up on its own line."""
    cluster = RayEngine(num_cpus=cpus)
    cluster.__enter__()
    print(
        f"ray start-up ({cpus} CPUs, not counted below): cluster {cluster.start_s:.1f} s, "
        f"then {cluster.warm_s:.1f} s warming its worker processes (imports)"
    )
    return cluster


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def driver_rss(root: Path, address: str, chunks: str, workers: int) -> int:
    """Peak RSS (bytes) of a `pipeline prepare --engine ray` driver process joining the cluster at `address`."""
    code = (
        "import resource, sys; from pipeline.cli.app import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n"
    )
    args = ["prepare", "--chunk", chunks, "--source-dir", str(root / "src"), "--output-dir", str(root / "out")]
    args += ["--size", "x".join(map(str, OUT_SIZE)), "--engine", "ray", "--ray-address", address]
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=os.environ
    )
    return int(next(line for line in out.stdout.splitlines() if line.startswith("RSS")).split()[1])


def engine_run(root: Path, args: argparse.Namespace, engine, chunk_bytes: int) -> float:
    """Seconds of one `prepare` run over every chunk into a fresh `root`; prints clips/s and the peak source."""
    shutil.rmtree(root, ignore_errors=True)
    with DiskPeak(root) as disk:
        result, secs = timed(lambda: prepare.run(config_for(root, args.workers, None), engine=engine))
    n = result.segments.clips
    if result.segments.done != n:
        raise SystemExit(f"{engine.describe()}: {n - result.segments.done} of {n} clips not cut; see {root}")
    print(f"{engine.describe()}: {n} clips in {secs:.1f} s = {n / secs:.2f} clips/s; "
          f"peak source on disk / largest chunk: {disk.peak / chunk_bytes:.2f} (goal <= 2)")  # fmt: skip
    return secs


def rss_ratio(work: Path, args: argparse.Namespace) -> None:
    """Driver peak RSS over 2 and over 8 chunks, each a child process joining the running cluster."""
    import ray

    address = ray.get_runtime_context().gcs_address
    rss = {}
    for k in (2, min(8, args.chunks)):
        root = work / f"rss_{k}"
        shutil.rmtree(root, ignore_errors=True)
        rss[k] = driver_rss(root, address, f"0-{k - 1}", args.workers)
        print(f"driver peak RSS over {k} chunks: {rss[k] / 2**20:.0f} MiB")
    print(f"driver peak RSS {max(rss)} / 2 chunks: {rss[max(rss)] / rss[2]:.2f} (goal <= 1.2)")


def default_run(args: argparse.Namespace, work: Path) -> None:
    repo = args_repo(args, work, "repo")
    chunk_bytes = max(
        repo.chunk_path(DEFAULT_CAMERA, c).stat().st_size + repo.chunk_path("egomotion", c).stat().st_size
        for c in {clip.chunk for clip in repo.clips}
    )
    print(f"repository: {args.chunks} chunks x {args.clips_per_chunk} clips, {args.size}, {args.duration:g} s")
    print(f"largest chunk: {chunk_bytes / 1e6:.2f} MB of source zips")
    with serve_repo(repo.root) as server:
        os.environ["HF_ENDPOINT"] = server.endpoint
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        # local, then (a fresh cluster, Ray, local) `repeats` times: every Ray run sits between two local runs
        t_local = [engine_run(work / "local", args, LocalEngine(args.workers), chunk_bytes)]
        t_ray = []
        for repeat in range(args.repeats):
            cluster = start_cluster(args.workers)
            try:
                t_ray.append(engine_run(work / "ray", args, RayEngine(), chunk_bytes))
                if repeat == 0:
                    rss_ratio(work, args)
            finally:
                cluster.__exit__(None, None, None)
            t_local.append(engine_run(work / "local", args, LocalEngine(args.workers), chunk_bytes))
    pairs = [(t_local[i] + t_local[i + 1]) / 2 / t for i, t in enumerate(t_ray)]
    mean_local, mean_ray = sum(t_local) / len(t_local), sum(t_ray) / len(t_ray)
    print(f"ray / local clips/s, each Ray run against the mean of the local runs around it: "
          f"{', '.join(f'{r:.2f}' for r in pairs)}")  # fmt: skip
    print(
        f"ray / local clips/s: {mean_local / mean_ray:.2f} (goal >= 0.9; the mean of {len(t_local)} local runs, "
        f"{mean_local:.2f} s, over the mean of {len(t_ray)} Ray runs, {mean_ray:.2f} s)"
    )


def timed_cut(job, config) -> dict:
    """The stage's per-clip worker, with the seconds it took (for the overhead figure)."""
    t0 = time.perf_counter()
    record = process_clip_safe(job, config)
    record["bench_task_s"] = time.perf_counter() - t0
    record["bench_done_at"] = time.time()
    return record


class TimedRay(RayEngine):
    """The Ray engine with `timed_cut` as the per-clip worker; keeps each clip's task seconds and end time."""

    samples: list[tuple[int, float, float]] = []

    def run_chunks(self, works, ops, max_in_flight, on_interrupt=None):
        from dataclasses import replace

        for job, record in super().run_chunks(works, replace(ops, cut=timed_cut), max_in_flight, on_interrupt):
            if "bench_task_s" in record:
                self.samples.append((job.chunk, record["bench_task_s"], record["bench_done_at"]))
            yield job, record


def simulate(args: argparse.Namespace, work: Path) -> None:
    repo = args_repo(args, work, "sim")
    n = len(repo.clips)
    print(
        f"simulation: {args.chunks} chunks x {args.clips_per_chunk} clips = {n} clips, {args.size}, "
        f"{args.duration:g} s"
    )
    with serve_repo(repo.root) as server:
        os.environ["HF_ENDPOINT"] = server.endpoint
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        root = work / "sim_run"
        shutil.rmtree(root, ignore_errors=True)
        cluster = start_cluster(args.workers)
        try:
            t0 = time.time()
            result, wall = timed(lambda: prepare.run(config_for(root, args.workers, None), engine=TimedRay()))
        finally:
            cluster.__exit__(None, None, None)
    samples = TimedRay.samples
    print(f"ray engine: {result.segments.done} of {n} clips done in {wall:.1f} s = {n / wall:.2f} clips/s")
    task_s = sum(s for _, s, _ in samples) / max(1, len(samples))
    overhead = wall * args.workers / n - task_s
    print(
        f"mean time in the cut task: {task_s:.3f} s/clip; engine overhead (wall x CPUs / clips - that): "
        f"{overhead:.3f} s/clip ({overhead / (wall * args.workers / n):.0%} of the CPU time)"
    )
    ends = sorted(t for _, _, t in samples)
    half = len(ends) // 2
    first = half / (ends[half - 1] - t0)
    second = (len(ends) - half) / (ends[-1] - ends[half - 1])
    print(
        f"throughput, first half of the clips: {first:.2f} clips/s; second half: {second:.2f} clips/s; "
        f"second / first: {second / first:.2f}"
    )
    per_chunk = {}
    for chunk, _, t in samples:
        per_chunk.setdefault(chunk, []).append(t)
    line = ", ".join(f"{c}: {max(ts) - t0:.0f} s" for c, ts in sorted(per_chunk.items()))
    print(f"chunk finished at (s after start): {line}")


def hd(args: argparse.Namespace, work: Path) -> None:
    config = SynthConfig(output_dir=work / f"hd_{args.hd_duration:g}s", n_chunks=1, clips_per_chunk=1, width=1920,
                         height=1080, duration_s=args.hd_duration, frame_code=False)  # fmt: skip
    repo = synthetic_repo(config)
    clip = repo.clips[0]
    src = repo.chunk_path(DEFAULT_CAMERA, 0).stat().st_size + repo.chunk_path("egomotion", 0).stat().st_size
    print(f"1080p synthetic clip ({args.hd_duration:g} s, {config.n_frames} frames): {src / 1e6:.2f} MB of zips")
    out = work / "hd_out"
    shutil.rmtree(out, ignore_errors=True)
    # CPU seconds (all threads of the process, pinned to one core) are what a core spends, whatever else runs.
    code = (
        "import os, resource, time; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from pipeline.stages.segment.stage import run; from pipeline.stages.segment.config import SegmentConfig\n"
        f"c = SegmentConfig(input_dir={str(repo.root)!r}, output_dir={str(out)!r}, max_clips=None, workers=1)\n"
        "cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])\n"
        "t, c0 = time.perf_counter(), cpu(); s = run(c)\n"
        "print('CUT', time.perf_counter() - t, cpu() - c0, s.segments)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, cpu, segs = next(line for line in res.stdout.splitlines() if line.startswith("CUT")).split()[1:]
    wall_s, cpu_s, per_frame = float(wall), float(cpu), float(cpu) / config.n_frames
    mp4 = [p.stat().st_size for p in out.rglob("*.mp4")]
    print(
        f"cut on one core (448x252 segments, stage defaults): {cpu_s:.1f} CPU s ({wall_s:.1f} s wall) for {segs} "
        f"segments = {per_frame * 1e3:.1f} CPU ms per source frame (x 600 frames = {per_frame * 600:.1f} core-s "
        "per 20-s clip)"
    )
    print(f"output: {sum(mp4) / len(mp4) / 1e3:.1f} KB per 1-s 448x252 segment (synthetic content)")
    print(json.dumps({"clip": clip.clip_id, "source_bytes": src, "cut_cpu_s": cpu_s, "cut_wall_s": wall_s,
                      "frames": config.n_frames, "segments": int(segs)}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=None, help="Keep repositories and outputs here.")
    parser.add_argument("--workers", type=int, default=2, help="Local workers = Ray CPUs.")
    parser.add_argument("--chunks", type=int, default=None, help="Chunks (default 8).")
    parser.add_argument(
        "--clips-per-chunk", type=int, default=None, help="Clips per chunk (default 3; 64 simulating)."
    )
    parser.add_argument("--size", default=None, help="Source WxH (default 256x144; 320x180 simulating).")
    parser.add_argument(
        "--duration", type=float, default=None, help="Clip seconds (default 20, as the dataset's; 4 simulating)."
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="Ray runs, each after a local run and a fresh cluster (default 3)."
    )
    parser.add_argument("--simulate", action="store_true", help="The >= 500-clip Ray simulation.")
    parser.add_argument("--hd", action="store_true", help="Per-clip figures of one 1920x1080 clip.")
    parser.add_argument("--hd-duration", type=float, default=20.0, help="Seconds of the 1080p clip.")
    args = parser.parse_args()
    args.chunks = args.chunks or 8
    args.clips_per_chunk = args.clips_per_chunk or (64 if args.simulate else 3)
    args.size = args.size or ("320x180" if args.simulate else "256x144")
    args.duration = args.duration or (4.0 if args.simulate else 20.0)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="prepare_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work dir: {work}")
    if args.hd:
        hd(args, work)
    elif args.simulate:
        simulate(args, work)
    else:
        default_run(args, work)


if __name__ == "__main__":
    main()
