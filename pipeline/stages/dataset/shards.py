"""Split directories written shard by shard, in the layout that `datasets.load_from_disk` reads (what
`Dataset.save_to_disk` writes): Arrow stream files `data-XXXXX-of-YYYYY.arrow` written by datasets' own
`ArrowWriter` with the declared Features, `dataset_info.json` and `state.json`.

The build writes its rows straight into the final shards, so it never re-reads or copies them, and no file it
writes is memory-mapped: peak memory stays one batch of rows whatever the number of segments.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

STATE_FILE = "state.json"
INFO_FILE = "dataset_info.json"


@dataclass(frozen=True)
class Shard:
    """One finished shard file (under a job's temporary name until `finish_split` names it)."""

    path: Path
    rows: int


class ShardWriter:
    """Rows of one side of one row-writing job, written to `{split_dir}/{prefix}-{k:05d}.arrow` (k = 0, 1, ...).

    A new shard starts before the current one would pass `max_bytes` of Arrow data (the measure of `save_to_disk`'s
    `max_shard_size`); only a single row larger than that makes a shard over the limit. No empty shard is written.
    """

    def __init__(self, split_dir: Path, prefix: str, features: datasets.Features, max_bytes: int) -> None:
        self.split_dir, self.prefix, self.features, self.max_bytes = Path(split_dir), prefix, features, max_bytes
        self.split_dir.mkdir(parents=True, exist_ok=True)
        self.shards: list[Shard] = []
        self._writer: Any = None
        self._path: Path | None = None
        self._bytes = 0
        self._rows = 0

    def write(self, table: pa.Table) -> None:
        """Append rows (a table in the features' Arrow schema)."""
        if not len(table):
            return
        row_bytes = max(table.nbytes / len(table), 1.0)
        step = max(1, int(self.max_bytes // row_bytes))
        for start in range(0, len(table), step):
            piece = table.slice(start, step)
            size = row_bytes * len(piece)
            if self._writer is not None and self._bytes + size > self.max_bytes:
                self._finish_shard()
            if self._writer is None:
                self._open()
            self._writer.write_table(piece)
            self._bytes += size
            self._rows += len(piece)

    def close(self) -> list[Shard]:
        """Finish the current shard; the shards written, in order."""
        self._finish_shard()
        return self.shards

    def _open(self) -> None:
        from datasets.arrow_writer import ArrowWriter

        self._path = self.split_dir / f"{self.prefix}-{len(self.shards):05d}.arrow"
        self._writer = ArrowWriter(features=self.features, path=str(self._path))
        self._bytes = self._rows = 0

    def _finish_shard(self) -> None:
        if self._writer is None:
            return
        self._writer.finalize()
        self._writer.close()
        self.shards.append(Shard(self._path, self._rows))
        self._writer = None


def finish_split(
    split_dir: Path, split: str, shards: list[Shard], features: datasets.Features, identity: str
) -> list[str]:
    """Name `shards` (in order) `data-XXXXX-of-YYYYY.arrow` and write `dataset_info.json` and `state.json`, so that
    `datasets.load_from_disk(split_dir)` reads the split; return the file names. No shard: one empty shard.

    `identity` (text describing the build, e.g. its settings and input) goes into the split's fingerprint.
    """
    import datasets
    from datasets.arrow_writer import ArrowWriter
    from datasets.utils.py_utils import asdict

    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    if not shards:  # load_from_disk needs at least one file, which may hold no rows
        empty = split_dir / "empty.arrow"
        writer = ArrowWriter(features=features, path=str(empty))
        writer.finalize()
        writer.close()
        shards = [Shard(empty, 0)]
    names = [f"data-{i:05d}-of-{len(shards):05d}.arrow" for i in range(len(shards))]
    for shard, name in zip(shards, names, strict=True):
        os.replace(shard.path, split_dir / name)
    # datasets keys its map() caches on the fingerprint: derive it from what determines the content.
    rows = [shard.rows for shard in shards]
    key = json.dumps({"identity": identity, "split": split, "rows": rows, "features": features.to_dict()})
    state = {
        "_data_files": [{"filename": name} for name in names],
        "_fingerprint": hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest(),
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": split,
    }
    (split_dir / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    info = asdict(datasets.DatasetInfo(features=features))
    (split_dir / INFO_FILE).write_text(json.dumps({k: info[k] for k in sorted(info)}, indent=2), encoding="utf-8")
    return names


def first_rows(split_dir: Path, names: list[str], limit: int) -> list[dict[str, Any]]:
    """The first `limit` rows of a finished split as Python dicts, read from its first shards (not memory-mapped)."""
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    for name in names:
        with pa.OSFile(str(Path(split_dir) / name)) as source, pa.ipc.open_stream(source) as reader:
            for batch in reader:
                rows.extend(batch.slice(0, limit - len(rows)).to_pylist())
                if len(rows) >= limit:
                    return rows
    return rows


__all__ = ["INFO_FILE", "STATE_FILE", "Shard", "ShardWriter", "finish_split", "first_rows"]
