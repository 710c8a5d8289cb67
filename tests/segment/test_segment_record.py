"""`SegmentRecord` declares the segment columns once: the stage writes its fields, in order, with its types; the JSON
form round-trips; the reader checks the columns the build reads with the record's types."""

from __future__ import annotations

import json
from dataclasses import fields

import pyarrow.parquet as pq
import pytest

from pipeline.contracts import segments_reader
from pipeline.contracts.segment_record import COLUMNS, READ_COLUMNS, SegmentRecord, arrow_schema
from tests.fixtures.dataset_fixtures import make_segment_records

LIST = "list<item: double>"
# The columns of segments.parquet (docs/ARCHITECTURE.md): a change here changes the files users have.
PARQUET_COLUMNS = [
    ("id", "string"),
    ("clip_id", "string"),
    ("chunk", "int64"),
    ("split", "string"),
    ("drive", "string"),
    ("drive_offset_us", "int64"),
    ("camera", "string"),
    ("segment_index", "int64"),
    ("start_us", "int64"),
    ("end_us", "int64"),
    ("video", "string"),
    ("frame_count", "int64"),
    ("first_frame_us", "int64"),
    ("last_frame_us", "int64"),
    ("fps", "double"),
    ("width", "int64"),
    ("height", "int64"),
    ("velocity", LIST),
    ("curvature", LIST),
    ("history_velocity", LIST),
    ("history_curvature", LIST),
    ("speed_mean_mps", "double"),
    ("speed_last_mps", "double"),
    ("curvature_mean", "double"),
    ("curvature_last", "double"),
    ("future_xyh", "list<item: list<item: double>>"),
    ("history_xyh", "list<item: list<item: double>>"),
    ("cameras", "list<item: string>"),
    ("videos", "list<item: string>"),
]


def test_the_schema_is_the_fields_in_order():
    assert list(COLUMNS) == [f.name for f in fields(SegmentRecord)]
    assert [(f.name, str(f.type)) for f in arrow_schema()] == PARQUET_COLUMNS


def test_json_round_trips_in_field_order():
    data = make_segment_records(n_clips=1, n_segments=2)[1]
    record = SegmentRecord.from_json({**data, "extra": "ignored"})
    assert (record.segment_index, record.start_us, record.velocity) == (1, 1_033_000, data["velocity"])
    assert record.to_json() == data
    assert list(record.to_json()) == list(COLUMNS)


def test_from_json_names_a_missing_field():
    data = make_segment_records(n_clips=1, n_segments=1)[0]
    del data["fps"]
    with pytest.raises(KeyError, match="fps"):
        SegmentRecord.from_json(data)


def test_the_reader_checks_the_build_columns_with_the_record_types():
    assert segments_reader.STR_FIELDS == ("id", "clip_id", "video")
    assert segments_reader.INT_FIELDS == ("chunk", "segment_index", "start_us", "end_us")
    assert segments_reader.TARGET_FIELDS == ("velocity", "curvature", "history_velocity", "history_curvature")
    assert segments_reader.SPEED_FIELDS == ("velocity", "history_velocity")
    assert segments_reader.OPTIONAL_FIELDS == ("split", "drive", "drive_offset_us")
    assert sorted(segments_reader.SCHEMA.names) == sorted(READ_COLUMNS)
    record_schema = arrow_schema()
    for field in segments_reader.SCHEMA:
        assert field.equals(record_schema.field(field.name)), field.name


def test_the_stage_writes_segment_records(segments_dir, synthetic_repo):
    metadata = segments_dir / "metadata"
    assert pq.read_schema(metadata / "segments.parquet").equals(arrow_schema())
    segments = json.loads((metadata / "segments.json").read_text())
    assert len(segments) == 19 * len(synthetic_repo.clips)
    for data in segments:
        assert list(data) == list(COLUMNS)
        assert SegmentRecord.from_json(data).to_json() == data
