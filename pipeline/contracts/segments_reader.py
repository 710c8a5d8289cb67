"""Stream the segment stage's records (`segments.parquet` by row group, `segments.json` incrementally) as checked
Arrow batches, so that memory holds one batch whatever the file's size.

Each batch is checked before it is returned, and a bad record is one `PipelineError` line naming the file, the
record and the field: every field the dataset needs is present with its type; target lists have n values, are
finite and physically possible (speeds in [0, `MAX_SPEED_MPS`] m/s, curvatures within +-`MAX_CURVATURE_PER_M`
1/m, the answer parser's limits); `video` is a relative path without a NUL byte that stays inside the video root
(those two checks are `record_checks`', which the dataset reader applies too); every window ends after it starts,
and consecutive segments of a clip are in time order; where a record has trajectories and cameras (record version
5), they pass `segment_extras`'s checks. Symlinks out of the video root are the build's check (it knows the root).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.contracts.record_checks import first_bad_path, first_bad_target
from pipeline.contracts.segment_extras import CAMERA_FIELDS, TRAJECTORY_FIELDS, batch_problem, json_problem
from pipeline.contracts.segment_record import COLUMN_TYPES, OPTIONAL_COLUMNS, READ_COLUMNS, UNITS, arrow_schema
from pipeline.core.errors import PipelineError, first_line

# Columns a file may lack (files from before they were added): the official split and the drive key; null there.
OPTIONAL_FIELDS = tuple(n for n in OPTIONAL_COLUMNS if COLUMN_TYPES[n] in (str, int))
# List columns of record version 5 (segment_extras), null in older files.
EXTRA_FIELDS = (*TRAJECTORY_FIELDS, *CAMERA_FIELDS)
_MAY_LACK = (*OPTIONAL_FIELDS, *EXTRA_FIELDS)
# The required `SegmentRecord` columns the build reads, by type, in field order.
STR_FIELDS = tuple(n for n in READ_COLUMNS if COLUMN_TYPES[n] is str and n not in OPTIONAL_FIELDS)
INT_FIELDS = tuple(n for n in READ_COLUMNS if COLUMN_TYPES[n] is int and n not in OPTIONAL_FIELDS)
TARGET_FIELDS = tuple(n for n in READ_COLUMNS if COLUMN_TYPES[n] == list[float])
# Target columns in m/s (the others are curvatures, 1/m).
SPEED_FIELDS = tuple(n for n in TARGET_FIELDS if UNITS[n] == "m/s")
# Records per batch of a JSON file (a parquet batch is at most one row group, cut to this size).
BATCH_ROWS = 20_000
# Characters read from a JSON file at a time.
_JSON_READ_CHARS = 1 << 20
_SCALAR = {int: "int", str: "string"}
# chunk and segment_index are stored as int32.
_INT32_MAX = 2**31 - 1

SCHEMA = arrow_schema((*STR_FIELDS, *INT_FIELDS, *OPTIONAL_FIELDS, *TARGET_FIELDS, *EXTRA_FIELDS))
"""Columns of a batch. All but OPTIONAL_FIELDS (needed only by some split methods and the leakage report) are
required."""


@dataclass
class SegmentBatch:
    """Consecutive checked records of a segments file."""

    # Index in the file of the batch's first record.
    start: int
    # The SCHEMA columns, no nulls except in OPTIONAL_FIELDS.
    table: pa.Table

    def targets(self, name: str, n: int) -> np.ndarray:
        """(rows, n) float64 values of one target column (m/s or 1/m)."""
        return _list_values(self.table.column(name)).reshape(-1, n)


def _list_values(column: pa.ChunkedArray) -> np.ndarray:
    return pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


class SegmentsFile:
    """A segments file opened for streaming: `batches()` yields checked `SegmentBatch`es in file order.

    A parquet file is read by row group and has one part per row group (parts can be read by separate
    processes); a JSON file (a list of records) is parsed incrementally and is one part.

    Raises:
        PipelineError: the file is missing, is not a readable parquet file, lacks a column or has a column of the
            wrong type.
    """

    def __init__(self, path: Path, n: int) -> None:
        self.path = Path(path)
        self.n = n
        if not self.path.is_file():
            raise PipelineError(
                f"segments file not found: {self.path} (run `pipeline segment` first or pass --segments-path)"
            )
        self.is_parquet = self.path.suffix == ".parquet"
        self._row_groups: list[int] = []
        if self.is_parquet:
            self._row_groups = _parquet_row_groups(self.path)

    @property
    def records(self) -> int | None:
        """Records in the file (None for JSON: known only once read)."""
        return sum(self._row_groups) if self.is_parquet else None

    @property
    def parts(self) -> int:
        return len(self._row_groups) if self.is_parquet else 1

    def part_rows(self) -> list[int]:
        """Records of each part (a JSON file's single part: 1, its count is known only once read)."""
        return list(self._row_groups) if self.is_parquet else [1]

    def part_starts(self) -> list[int]:
        """Index of each part's first record."""
        return [int(s) for s in np.cumsum([0, *self._row_groups[:-1]])] if self.is_parquet else [0]

    def batches(self, parts: range | None = None) -> Iterator[SegmentBatch]:
        """Checked batches of the given parts (default all), in file order.

        Raises:
            PipelineError: a record is bad or the file cannot be read (the message names the record and field).
        """
        parts = range(self.parts) if parts is None else parts
        batches = self._parquet_batches(parts) if self.is_parquet else self._json_batches()
        checker = _Checker(self.path, self.n)
        for batch in batches:
            checker.check(batch)
            yield batch

    def _parquet_batches(self, parts: range) -> Iterator[SegmentBatch]:
        import pyarrow.parquet as pq

        start = self.part_starts()[parts.start] if len(parts) else 0
        try:
            with pq.ParquetFile(self.path) as file:
                names = file.schema_arrow.names
                columns = [f.name for f in SCHEMA if f.name not in _MAY_LACK or f.name in names]
                for group in parts:
                    for record_batch in file.iter_batches(BATCH_ROWS, row_groups=[group], columns=columns):
                        table = _conform(pa.Table.from_batches([record_batch]))
                        yield SegmentBatch(start, table)
                        start += len(table)
        except (OSError, pa.ArrowException) as err:
            raise PipelineError(f"{self.path}: unreadable parquet near record {start} ({first_line(err)})") from None

    def _json_batches(self) -> Iterator[SegmentBatch]:
        rows: list[dict[str, Any]] = []
        start = 0
        for index, record in enumerate(_json_list(self.path)):
            rows.append(_check_json_record(self.path, index, record, self.n))
            if len(rows) == BATCH_ROWS:
                yield SegmentBatch(start, self._json_table(start, rows))
                start, rows = start + len(rows), []
        if rows:
            yield SegmentBatch(start, self._json_table(start, rows))
        elif start == 0:
            raise PipelineError(f"{self.path}: contains no segments")

    def _json_table(self, start: int, rows: list[dict[str, Any]]) -> pa.Table:
        try:
            return pa.Table.from_pylist(rows, schema=SCHEMA)
        except (OverflowError, pa.ArrowException) as err:
            last = start + len(rows) - 1
            raise PipelineError(f"{self.path}: records {start}-{last}: {first_line(err)}") from None


def _parquet_row_groups(path: Path) -> list[int]:
    """Rows per row group, after checking that the file is parquet with the needed columns and types."""
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as file:
            schema = file.schema_arrow
            groups = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    except (OSError, pa.ArrowException) as err:
        raise PipelineError(f"{path}: not a readable parquet file ({first_line(err)})") from None
    for field in SCHEMA:
        if field.name not in schema.names:
            if field.name in _MAY_LACK:
                continue
            raise PipelineError(f"{path}: no column {field.name!r}")
        kind = schema.field(field.name).type
        ok = {
            "string": pa.types.is_string(kind) or pa.types.is_large_string(kind),
            "int": pa.types.is_integer(kind),
            "list": _is_number_list(kind),
            "lists": pa.types.is_list(kind) or pa.types.is_large_list(kind),
        }[_kind(field.name)]
        if not ok:
            expected = "a list of numbers" if field.name in TARGET_FIELDS else field.type
            raise PipelineError(f"{path}: column {field.name!r} has type {kind}, expected {expected}")
    if sum(groups) == 0:
        raise PipelineError(f"{path}: contains no segments")
    return groups


def _kind(name: str) -> str:
    return "lists" if name in EXTRA_FIELDS else "list" if name in TARGET_FIELDS else _SCALAR[COLUMN_TYPES[name]]


def _is_number_list(kind: pa.DataType) -> bool:
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    return is_list and (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type))


def _conform(table: pa.Table) -> pa.Table:
    """The SCHEMA columns of a parquet batch, cast to their canonical types (a missing optional one becomes nulls)."""
    columns = []
    for field in SCHEMA:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(len(table), field.type))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


# --- JSON ---------------------------------------------------------------------------------------------------------

_JSON_TYPES = {"{": "dict", '"': "str", "t": "bool", "f": "bool", "n": "NoneType"}
_WHITESPACE = " \t\n\r"


def _json_list(path: Path) -> Iterator[Any]:
    """The items of a JSON list, parsed one at a time from a file read in blocks (stdlib parser: NaN is read).

    Raises:
        PipelineError: the file is not UTF-8 JSON or not a list.
    """
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        reader = _Buffer(f, path)
        head = reader.peek()
        if head != "[":
            if head in _JSON_TYPES or head.isdigit() or head == "-":
                kind = _JSON_TYPES.get(head, "number")
                raise PipelineError(f"{path}: expected a JSON list of segment records, got {kind}")
            reader.fail("expected '['")
        reader.pos += 1
        first = True
        while True:
            if reader.peek() == "]":
                return
            if not first:
                if reader.peek() != ",":
                    reader.fail("expected ',' or ']'")
                reader.pos += 1
                reader.peek()
            while True:
                try:
                    value, end = decoder.raw_decode(reader.text, reader.pos)
                except json.JSONDecodeError as err:
                    if reader.more():
                        continue
                    reader.fail(err.msg, err.pos)
                if end < len(reader.text) or not reader.more():
                    break
            reader.pos = end
            first = False
            yield value


class _Buffer:
    """The unread text of a file, refilled in blocks; `pos` indexes `text`."""

    def __init__(self, file: Any, path: Path) -> None:
        self.file, self.path = file, path
        self.text, self.pos, self.offset = "", 0, 0

    def more(self) -> bool:
        """Append the next block (dropping what was read); False at the end of the file."""
        try:
            block = self.file.read(_JSON_READ_CHARS)
        except UnicodeDecodeError as err:
            raise PipelineError(f"{self.path}: not valid JSON (not UTF-8: {err.reason})") from None
        if not block:
            return False
        self.offset += self.pos
        self.text, self.pos = self.text[self.pos :] + block, 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character (skipping to it)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                self.fail("unexpected end of file")

    def fail(self, message: str, pos: int | None = None) -> None:
        at = self.offset + (self.pos if pos is None else pos)
        raise PipelineError(f"{self.path}: not valid JSON ({message} at character {at})")


def record_error(path: Path, index: int, rid: Any, message: str) -> PipelineError:
    where = f"record {index}" + (f" (id {rid!r})" if isinstance(rid, str) else "")
    return PipelineError(f"{path}: {where}: {message}")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_json_record(path: Path, index: int, rec: Any, n: int) -> dict[str, Any]:
    """The types of one JSON record (what Arrow conversion cannot name); the values are checked per batch."""
    if not isinstance(rec, dict):
        raise record_error(path, index, None, f"expected an object, got {type(rec).__name__}")
    rid = rec.get("id")
    for key in (*STR_FIELDS, *INT_FIELDS, *TARGET_FIELDS):
        if key not in rec:
            raise record_error(path, index, rid, f"missing field {key!r}")
    for key in STR_FIELDS:
        if not isinstance(rec[key], str) or not rec[key]:
            raise record_error(path, index, rid, f"field {key!r} must be a non-empty string")
    for key in INT_FIELDS:
        if isinstance(rec[key], bool) or not isinstance(rec[key], int):
            raise record_error(path, index, rid, f"field {key!r} must be an integer, got {rec[key]!r}")
    for key in TARGET_FIELDS:
        values = rec[key]
        if not isinstance(values, list) or not all(map(_is_number, values)):
            raise record_error(path, index, rid, f"field {key!r} must be a list of numbers")
    for key in OPTIONAL_FIELDS:
        value, kind = rec.get(key), COLUMN_TYPES[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            what = "an integer" if kind is int else "a string"
            raise record_error(path, index, rid, f"field {key!r} must be {what}, got {value!r}")
    problem = json_problem(rec)
    if problem is not None:
        raise record_error(path, index, rid, problem)
    return rec


# --- checks on a batch --------------------------------------------------------------------------------------------


class _Checker:
    """Checks batches in file order; remembers the previous record to check time order across batches."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n = path, n
        self._last: tuple[str, int, int] | None = None  # (clip_id, segment_index, start_us) of the previous record

    def fail(self, batch: SegmentBatch, row: int, message: str) -> PipelineError:
        rid = batch.table.column("id")[row].as_py()
        return record_error(self.path, batch.start + row, rid, message)

    def check(self, batch: SegmentBatch) -> None:
        table = batch.table
        for name in (*STR_FIELDS, *INT_FIELDS, *TARGET_FIELDS):
            column = table.column(name)
            if column.null_count:
                raise self.fail(batch, _first(column.is_null()), f"missing field {name!r}")
        for name in STR_FIELDS:
            empty = pc.equal(pc.utf8_length(table.column(name)), 0)
            if pc.any(empty).as_py():
                raise self.fail(batch, _first(empty), f"field {name!r} must be a non-empty string")
        for name in ("chunk", "segment_index"):
            values = table.column(name).to_numpy()
            bad = (values < 0) | (values > _INT32_MAX)
            if bad.any():
                row = int(np.argmax(bad))
                raise self.fail(batch, row, f"field {name!r} must be in [0, {_INT32_MAX}], got {values[row]}")
        for name in TARGET_FIELDS:
            self._check_targets(batch, name)
        self._check_times(batch)
        self._check_videos(batch)
        problem = batch_problem(table)
        if problem is not None:
            raise self.fail(batch, *problem)

    def _check_targets(self, batch: SegmentBatch, name: str) -> None:
        column = batch.table.column(name)
        if pc.list_flatten(column).null_count:
            raise self.fail(batch, _first(_has_null_item(column)), f"field {name!r} must be a list of numbers")
        lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
        if (lengths != self.n).any():
            row = int(np.argmax(lengths != self.n))
            message = f"field {name!r} has {lengths[row]} values, expected {self.n} (--target-hz {self.n})"
            raise self.fail(batch, row, message)
        values = batch.targets(name, self.n)
        bad = first_bad_target(values.ravel(), np.repeat(np.arange(len(values)), self.n), UNITS[name])
        if bad is not None:
            raise self.fail(batch, bad[0], f"field {name!r} {bad[1]}")

    def _check_times(self, batch: SegmentBatch) -> None:
        table = batch.table
        start = table.column("start_us").to_numpy()
        end = table.column("end_us").to_numpy()
        if (end <= start).any():
            row = int(np.argmax(end <= start))
            raise self.fail(batch, row, f"field 'end_us' ({end[row]}) must be after 'start_us' ({start[row]})")
        clip = table.column("clip_id").to_numpy(zero_copy_only=False)
        index = table.column("segment_index").to_numpy()
        offset = int(self._last is not None)
        if self._last is not None:
            clip = np.concatenate([[self._last[0]], clip])
            index = np.concatenate([[self._last[1]], index])
            start = np.concatenate([[self._last[2]], start])
        # Consecutive records of one clip: start_us must move the same way as segment_index, which must move.
        same_clip = clip[1:] == clip[:-1]
        step, shift = np.diff(index), np.diff(start)
        bad = same_clip & ((step == 0) | (np.sign(shift) != np.sign(step)))
        if bad.any():
            k = int(np.argmax(bad))
            message = (
                "field 'segment_index' repeats the clip's previous segment"
                if step[k] == 0
                else f"field 'start_us' ({start[k + 1]}) is out of time order with the clip's previous segment "
                f"(index {index[k]}, start_us {start[k]})"
            )
            raise self.fail(batch, k + 1 - offset, message)
        self._last = (str(clip[-1]), int(index[-1]), int(start[-1]))

    def _check_videos(self, batch: SegmentBatch) -> None:
        bad = first_bad_path(batch.table.column("video").combine_chunks())
        if bad is not None:
            raise self.fail(batch, bad[0], f"field 'video' {bad[1]}")


def _first(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(np.argmax(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)))


def _has_null_item(column: pa.ChunkedArray) -> pa.Array:
    """Per row: the list holds a null item."""
    flat_null = pc.is_null(pc.list_flatten(column)).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
    rows = np.zeros(len(column), dtype=bool)
    rows[parents[flat_null]] = True
    return pa.array(rows)


__all__ = ["BATCH_ROWS", "SCHEMA", "TARGET_FIELDS", "SegmentBatch", "SegmentsFile", "record_error"]
