"""The aggregate outputs of a segment run: `segments.json`, `segments.parquet`, `manifest.json` and the resolved
config, streamed from the per-clip records (memory flat in the number of clips) and left untouched when a re-run
would write the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from pipeline.contracts.segment_record import SegmentRecord, arrow_schema
from pipeline.contracts.targets import TARGETS_KEY
from pipeline.core.atomic import atomic_path, temp_sibling
from pipeline.stages.segment.clip import load_clip_record
from pipeline.stages.segment.config import CONFIG_JSON, MANIFEST_JSON, SEGMENTS_JSON, SEGMENTS_PARQUET, SegmentConfig
from pipeline.stages.segment.jobs import ClipJob, SegmentResult, clip_record_path

log = logging.getLogger(__name__)


def metadata_dir(config: SegmentConfig) -> Path:
    i, n = config.shard
    base = config.output_dir / "metadata"
    return base if n == 1 else base / f"shard_{i}_of_{n}"


def write_outputs(config: SegmentConfig, results: Iterable[tuple[ClipJob, dict]]) -> SegmentResult:
    """Write segments.json, segments.parquet, manifest.json and the config from (job, clip summary) pairs.

    `results` come in clip order and are consumed as they arrive: segments are streamed from the per-clip files and
    manifest rows go to a temp file, so memory does not grow with the number of clips. The files replace the old
    ones only once complete (an interrupted run leaves them as they were), and only if their bytes changed.
    """
    meta = metadata_dir(config)
    meta.mkdir(parents=True, exist_ok=True)
    summary = SegmentResult(metadata_dir=meta)
    names = (SEGMENTS_JSON, SEGMENTS_PARQUET, MANIFEST_JSON)
    tmps = [temp_sibling(meta / name) for name in names]
    json_tmp, parquet_tmp, manifest_tmp = tmps
    config_json = {**config.to_json(), TARGETS_KEY: config.target_settings().to_json()}
    try:
        with (
            open(json_tmp, "w", encoding="utf-8") as fj,
            _ParquetStream(parquet_tmp) as fp,
            open(manifest_tmp, "w", encoding="utf-8") as fm,
        ):
            fj.write("[")
            # the layout of json.dumps({"config": ..., "clips": [...]}, indent=2), one clip row at a time
            fm.write(json.dumps({"config": config_json}, indent=2)[: -len("\n}")] + ',\n  "clips": [')
            for job, res in results:
                row = {"clip_id": job.clip_id, "chunk": job.chunk, **{k: res[k] for k in _MANIFEST_KEYS}}
                fm.write(("\n" if summary.clips == 0 else ",\n") + _indent(json.dumps(row, indent=2), "    "))
                summary.clips += 1
                summary.done += res["status"] == "done"
                summary.skipped += res["status"] == "skipped"
                summary.reused += res["reused"]
                summary.locked += res["status"] == "locked"
                if not res["segments"]:
                    continue
                record = load_clip_record(clip_record_path(config.output_dir, job.chunk, job.clip_id)) or {}
                for seg in map(SegmentRecord.from_json, record.get("segments", [])):
                    fj.write(("\n" if summary.segments == 0 else ",\n") + json.dumps(seg.to_json()))
                    fp.add(seg)
                    summary.segments += 1
            fj.write("\n]\n")
            fm.write(("\n  ]" if summary.clips else "]") + "\n}\n")
        for tmp, name in zip(tmps, names, strict=True):
            _replace_if_changed(tmp, meta / name)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    _write_if_changed(meta / CONFIG_JSON, (json.dumps(config_json, indent=2) + "\n").encode())
    log.info(
        "segment: %d segment(s) from %d clip(s) done (%d reused), %d skipped; metadata in %s",
        summary.segments,
        summary.done,
        summary.reused,
        summary.skipped,
        meta,
    )
    if summary.locked:
        log.warning(
            "segment: %d clip(s) are locked by a run on another host and not in this segments.json; re-run "
            "when it has finished",
            summary.locked,
        )
    return summary


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


_MANIFEST_KEYS = ("status", "reason", "segments", "skipped_segments", "warnings")


class _ParquetStream:
    """Write segment records to a parquet file in row groups of `SegmentRecord`'s schema (an empty table too)."""

    ROW_GROUP = 20_000

    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self._schema = arrow_schema()
        self._writer = pq.ParquetWriter(str(path), self._schema)
        self._batch: list[dict] = []

    def add(self, record: SegmentRecord) -> None:
        self._batch.append(record.to_json())
        if len(self._batch) >= self.ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._writer.write_table(self._pa.Table.from_pylist(self._batch, schema=self._schema))
            self._batch = []

    def __enter__(self) -> _ParquetStream:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._flush()
        self._writer.close()


def _replace_if_changed(tmp: Path, path: Path) -> None:
    """Rename a finished temp file into place, unless `path` already has identical bytes (then leave it)."""
    if path.is_file() and path.stat().st_size == tmp.stat().st_size and _same_bytes(tmp, path):
        tmp.unlink()
        return
    os.replace(tmp, path)


def _same_bytes(a: Path, b: Path, block: int = 1 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(block), fb.read(block)
            if x != y:
                return False
            if not x:
                return True


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write atomically, but leave an identical existing file untouched (a re-run changes no mtime)."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


__all__ = ["metadata_dir", "write_outputs"]
