"""Rows per second of `pipeline build-dataset` on synthetic segment records (empty video files).

    uv run python benchmarks/dataset_bench.py [--segments 10000] [--history]

Prints one line: segments, seconds for `pipeline.dataset.run` (read + check + rows + save_to_disk), rows/s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from pipeline.dataset import DatasetConfig, run

SEGMENTS_PER_CLIP = 20
N = 30


def write_segments(root: Path, n_segments: int, seed: int = 0) -> Path:
    """segments.json with n_segments records (20 per clip, random smooth targets) and touched mp4 files."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_segments):
        c, s = divmod(i, SEGMENTS_PER_CLIP)
        clip_id = str(uuid.UUID(int=c + 1))
        v0, k0 = rng.uniform(0, 30), rng.normal(0, 2e-3)
        velocity = v0 + np.cumsum(rng.normal(0, 0.02, N))
        curvature = k0 + np.cumsum(rng.normal(0, 1e-5, N))
        video = f"video_segments/chunk_0000/{clip_id}/{clip_id}_{s:02d}.mp4"
        (root / video).parent.mkdir(parents=True, exist_ok=True)
        (root / video).touch()
        records.append(
            {
                "id": f"{clip_id}_{s:02d}",
                "clip_id": clip_id,
                "chunk": 0,
                "split": "train",
                "segment_index": s,
                "start_us": s * 1_000_000,
                "end_us": (s + 1) * 1_000_000,
                "video": video,
                "velocity": velocity.tolist(),
                "curvature": curvature.tolist(),
                "history_velocity": (velocity - 0.1).tolist(),
                "history_curvature": curvature.tolist(),
            }
        )
    path = root / "metadata" / "segments.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(records))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--history", action="store_true", help="Put the history block in the prompts.")
    args = parser.parse_args()
    import datasets  # noqa: F401 - import time is not part of the measurement

    with tempfile.TemporaryDirectory() as tmp:
        segments = write_segments(Path(tmp) / "segs", args.segments)
        t0 = time.perf_counter()
        result = run(DatasetConfig(segments_path=segments, output_dir=Path(tmp) / "ds", history=args.history))
        seconds = time.perf_counter() - t0
    rows = sum(result.counts.values())
    print(
        f"build-dataset: {rows} segments in {seconds:.2f} s = {rows / seconds:,.0f} rows/s "
        f"(history {'on' if args.history else 'off'}; train {result.counts['train']}, test {result.counts['test']})"
    )


if __name__ == "__main__":
    main()
