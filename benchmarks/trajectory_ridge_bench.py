"""Peak memory of the trajectory ridge's fit on the train split (`trajectory_scoring.train_trajectory_ridge`), which
streams the split a batch at a time: it should not grow with the split's size.

    uv run python benchmarks/trajectory_ridge_bench.py [--sizes 100000,1000000] [--workdir DIR]

For each size it writes a train split of synthetic rows (`history_xyh`: 16 x [x, y, heading], `future_xyh`:
64 x [x, y, heading], float32, as the dataset stores them; Arrow stream shards of 100,000 rows in batches of 1,000,
listed in `state.json` as `datasets` lists them), fits the ridge in a fresh process and prints rows, seconds and the
peak RSS (ru_maxrss) of that process; then the ratio of the largest size's peak RSS to the smallest's (flat memory:
goal <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HISTORY_ROWS, FUTURE_ROWS = 16, 64
SHARD_ROWS, BATCH_ROWS = 100_000, 1_000


def _xyh_column(values: np.ndarray) -> object:
    """(M, m, 3) float32 -> Arrow list<list<float32>> column of M rows of m [x, y, heading] lists."""
    import pyarrow as pa

    m, rows, _ = values.shape
    inner = pa.ListArray.from_arrays(np.arange(0, 3 * m * rows + 1, 3, dtype=np.int32), values.reshape(-1))
    return pa.ListArray.from_arrays(np.arange(0, m * rows + 1, rows, dtype=np.int32), inner)


def write_train_split(dataset: Path, n_rows: int, seed: int = 0) -> None:
    """`dataset/train`: n_rows synthetic rows of straight-ish paths (one batch of values, repeated)."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    t = np.arange(-HISTORY_ROWS + 1, FUTURE_ROWS + 1) / 10.0  # s, 10 Hz, the last history row at 0
    speed, yaw_rate = rng.uniform(2.0, 30.0, (BATCH_ROWS, 1)), rng.uniform(-0.3, 0.3, (BATCH_ROWS, 1))
    heading = yaw_rate * t
    x, y = speed * t * np.cos(heading / 2), speed * t * np.sin(heading / 2)
    xyh = np.stack([x, y, heading], axis=-1).astype(np.float32) + rng.normal(0, 0.05, (BATCH_ROWS, len(t), 3))
    batch = pa.record_batch(
        {
            "history_xyh": _xyh_column(xyh[:, :HISTORY_ROWS].astype(np.float32)),
            "future_xyh": _xyh_column(xyh[:, HISTORY_ROWS:].astype(np.float32)),
        }
    )
    split = dataset / "train"
    split.mkdir(parents=True)
    names = []
    for shard, first in enumerate(range(0, n_rows, SHARD_ROWS)):
        names.append(f"data-{shard:05d}.arrow")
        with pa.OSFile(str(split / names[-1]), "wb") as sink, pa.ipc.new_stream(sink, batch.schema) as writer:
            for start in range(first, min(first + SHARD_ROWS, n_rows), BATCH_ROWS):
                writer.write_batch(batch.slice(0, min(BATCH_ROWS, n_rows - start)))
    (split / "state.json").write_text(json.dumps({"_data_files": [{"filename": n} for n in names]}))


def fit(dataset: Path) -> None:
    """Fit the ridge on `dataset`'s train split; print rows, seconds and peak RSS (KiB) as one JSON line."""
    from pipeline.contracts.dataset_reader import split_num_rows
    from pipeline.stages.evaluate.trajectory_scoring import train_trajectory_ridge

    start = time.perf_counter()
    ridge = train_trajectory_ridge(dataset)
    seconds = time.perf_counter() - start
    assert ridge.weights.shape == (3 * HISTORY_ROWS, 2 * FUTURE_ROWS)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": split_num_rows(dataset, "train"), "seconds": seconds, "rss_kib": rss_kib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="train rows, comma-separated")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir (default: system)")
    parser.add_argument("--fit", type=Path, default=None, help=argparse.SUPPRESS)  # the child process's work
    args = parser.parse_args()
    if args.fit is not None:
        fit(args.fit)
        return
    workdir = Path(tempfile.mkdtemp(dir=args.workdir))
    peaks = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            dataset = workdir / f"dataset_{size}"
            write_train_split(dataset, size)
            child = [sys.executable, __file__, "--fit", str(dataset)]
            figures = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
            peaks.append(figures["rss_kib"])
            print(
                f"trajectory ridge fit, {figures['rows']:,} train rows: {figures['seconds']:.1f} s, "
                f"peak RSS {figures['rss_kib'] / 1024:.0f} MiB"
            )
            shutil.rmtree(dataset)
        print(f"peak RSS ratio, largest / smallest size: {peaks[-1] / peaks[0]:.2f} (goal <= 1.3)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
