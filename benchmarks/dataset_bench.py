"""Rows per second and peak memory of `pipeline build-dataset` and `pipeline export` at the dataset's scale, on
synthetic segment records.

    uv run python benchmarks/dataset_bench.py [--sizes 100000,1000000,5800000] [--export-size 1000000]
        [--num-proc 2] [--workdir DIR]

For each size it writes `metadata/segments.parquet` (19 segments per clip, as the segment stage cuts a 20-s clip,
row groups of 20,000; one row group of smooth random targets, repeated) whose records all point to a few small
video files, then runs the
build in a fresh process and prints rows/s and the peak RSS (ru_maxrss) of the main process and of its largest
worker process, and the main process's sampled peak anonymous RSS. Then the ratio of the largest size's peak RSS to
the smallest's (flat memory: goal <= 1.3), and the same figures for
`pipeline export` (all three frameworks) of the dataset built at `--export-size`. Goals (issue 16): >= 5,000
rows/s on 2 cores, < 2 GiB peak RSS at 5.8 M segments.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

SEGMENTS_PER_CLIP = 19
N = 30
ROW_GROUP = 20_000
VIDEOS = 4


def write_segments(root: Path, n_segments: int, seed: int = 0) -> Path:
    """`root/metadata/segments.parquet` with n_segments records and `VIDEOS` tiny files they all point to."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for v in range(VIDEOS):
        (root / "videos" / f"v{v}.mp4").write_bytes(b"\0" * 1024)
    path = root / "metadata" / "segments.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    segment_texts = pa.array([f"_{s:02d}" for s in range(SEGMENTS_PER_CLIP)])
    video_texts = pa.array([f"videos/v{v}.mp4" for v in range(VIDEOS)])
    for first in range(0, n_segments, ROW_GROUP):
        rows = np.arange(first, min(first + ROW_GROUP, n_segments))
        clip, seg = np.divmod(rows, SEGMENTS_PER_CLIP)
        # Strings are made once per clip and gathered (pc.take), so that writing millions of records is quick.
        first_clip = int(clip[0])
        clip_texts = pa.array([str(uuid.UUID(int=c + 1)) for c in range(first_clip, int(clip[-1]) + 1)])
        clip_ids = pc.take(clip_texts, pa.array(clip - first_clip))
        if first == 0:  # one row group of targets, reused by every row group (the build's work is the same)
            v0 = rng.uniform(0, 30, (len(rows), 1))
            velocity = np.clip(v0 + np.cumsum(rng.normal(0, 0.02, (len(rows), N)), axis=1), 0, None)
            curvature = rng.normal(0, 2e-3, (len(rows), 1)) + np.cumsum(rng.normal(0, 1e-5, (len(rows), N)), axis=1)
        targets = {
            name: pa.ListArray.from_arrays(
                np.arange(0, len(rows) * N + 1, N, dtype=np.int32), values[: len(rows)].ravel()
            )
            for name, values in (
                ("velocity", velocity),
                ("curvature", curvature),
                ("history_velocity", np.clip(velocity - 0.1, 0, None)),
                ("history_curvature", curvature),
            )
        }
        table = pa.table(
            {
                "id": pc.binary_join_element_wise(clip_ids, pc.take(segment_texts, pa.array(seg)), ""),
                "clip_id": clip_ids,
                "chunk": clip // 100,
                "split": np.array(["train", "val", "test", "train", "train"])[clip % 5],
                "segment_index": seg,
                "start_us": seg * 1_000_000,
                "end_us": (seg + 1) * 1_000_000,
                "video": pc.take(video_texts, pa.array(rows % VIDEOS)),
                **targets,
            }
        )
        writer = writer or pq.ParquetWriter(str(path), table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP)
    if writer is not None:
        writer.close()
    return path


def _child(kind: str, source: str, out: str, num_proc: int) -> None:
    """Run one build or export in this (fresh) process and print its figures as JSON."""
    import resource

    import datasets  # noqa: F401 - import time is not part of the measurement

    peak_anon = _sample_anonymous_rss()
    t0 = time.perf_counter()
    if kind == "build":
        from pipeline.stages.dataset.stage import DatasetConfig, run

        result = run(DatasetConfig(segments_path=Path(source), output_dir=Path(out), num_proc=num_proc))
        rows = sum(result.counts.values())
    else:
        from pipeline.stages.export.stage import ExportConfig, run

        result = run(ExportConfig(dataset=Path(source), output_dir=Path(out)))
        rows = sum(result.counts.values())
    seconds = time.perf_counter() - t0
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    figures = {"rows": rows, "seconds": seconds, "rss_main_kib": kib[0], "rss_workers_kib": kib[1]}
    print(json.dumps({**figures, "anon_main_kib": peak_anon()}))


def _sample_anonymous_rss(interval_s: float = 0.2) -> Any:
    """Start sampling this process's anonymous RSS (RssAnon: memory it owns, without the page cache of
    memory-mapped Arrow files that ru_maxrss also counts); return a function giving the peak so far, KiB."""
    import threading

    peak = [0]

    def sample() -> None:
        while True:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("RssAnon:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            time.sleep(interval_s)

    threading.Thread(target=sample, daemon=True).start()
    return lambda: peak[0]


def measure(kind: str, source: Path, out: Path, num_proc: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(source), str(out), str(num_proc)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(label: str, m: dict) -> None:
    gib = 2**20
    print(
        f"{label}: {m['rows']:,} rows in {m['seconds']:.0f} s = {m['rows'] / m['seconds']:,.0f} rows/s; "
        f"peak RSS main {m['rss_main_kib'] / gib:.2f} GiB (anonymous {m['anon_main_kib'] / gib:.2f} GiB), "
        f"largest worker {m['rss_workers_kib'] / gib:.2f} GiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,5800000", help="Comma-separated segment counts.")
    parser.add_argument("--export-size", type=int, default=1_000_000, help="Size whose dataset is exported.")
    parser.add_argument("--num-proc", type=int, default=2, help="build-dataset --num-proc.")
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch directory (default: a temp dir).")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, source, out, num_proc = args.child
        _child(kind, source, out, int(num_proc))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        peaks = {}
        for size in sizes:
            root = Path(tmp) / f"segs_{size}"
            t0 = time.perf_counter()
            segments = write_segments(root, size)
            print(f"wrote {size:,} synthetic records in {time.perf_counter() - t0:.0f} s", flush=True)
            out = Path(tmp) / f"ds_{size}"
            m = measure("build", segments, out, args.num_proc)
            report(f"build-dataset {size:,} (--num-proc {args.num_proc})", m)
            peaks[size] = m["rss_main_kib"], m["anon_main_kib"], m["rss_workers_kib"]
            if size == args.export_size:
                report(f"export {size:,}", measure("export", out, Path(tmp) / "exports", 1))
                shutil.rmtree(Path(tmp) / "exports")
            shutil.rmtree(out)
            shutil.rmtree(root)
        if len(sizes) > 1:
            big, small = max(sizes), min(sizes)
            ratios = [b / a for a, b in zip(peaks[small], peaks[big], strict=True)]
            print(
                f"peak RSS ratio {big:,} / {small:,} segments: main {ratios[0]:.2f} (anonymous {ratios[1]:.2f}), "
                f"largest worker {ratios[2]:.2f}"
            )


if __name__ == "__main__":
    main()
