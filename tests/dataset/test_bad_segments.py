"""Segment records that cannot be trusted are refused by `build-dataset` with one line naming the file, the record
and the field, exit 2, and nothing written: impossible labels, escaping video paths, windows out of time order, and
parquet files that are not parquet or lack a column. Both input formats."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.contracts.answer import MAX_CURVATURE_PER_M, MAX_SPEED_MPS
from tests.cli_contract import assert_one_line_error, run_in_process
from tests.fixtures.dataset_fixtures import make_segment_records, write_segment_files


def bad_speed(recs):
    recs[1]["velocity"][4] = MAX_SPEED_MPS + 1e9


def negative_speed(recs):
    recs[1]["history_velocity"][0] = -5.0


def sharp_curve(recs):
    recs[2]["curvature"][7] = -1.5 * MAX_CURVATURE_PER_M


def escaping_video(recs):
    recs[1]["video"] = "../../../../etc/passwd"


def absolute_video(recs):
    recs[2]["video"] = "/etc/passwd"


def inner_escape(recs):
    recs[0]["video"] = "video_segments/../../outside.mp4"


def nul_in_video(recs):
    recs[1]["video"] = "video_segments/clip\x00.mp4"


def empty_window(recs):
    recs[1]["end_us"] = recs[1]["start_us"]


def backwards_in_clip(recs):
    recs[1]["start_us"] = recs[0]["start_us"] - 1_000_000
    recs[1]["end_us"] = recs[1]["start_us"] + 1_000_000


def repeated_index(recs):
    recs[1]["segment_index"] = recs[0]["segment_index"]


CASES = [
    (bad_speed, "record 1", "'velocity' holds 1e+09 m/s, outside [0, 100]"),
    (negative_speed, "record 1", "'history_velocity' holds -5 m/s, outside [0, 100]"),
    (sharp_curve, "record 2", "'curvature' holds -1.5 1/m, outside [-1, 1]"),
    (escaping_video, "record 1", "'video' escapes the video root"),
    (absolute_video, "record 2", "'video' is an absolute path"),
    (inner_escape, "record 0", "'video' escapes the video root"),
    (nul_in_video, "record 1", "'video' holds a NUL byte"),
    (empty_window, "record 1", "'end_us'"),
    (backwards_in_clip, "record 1", "'start_us'"),
    (repeated_index, "record 1", "'segment_index' repeats"),
]


@pytest.mark.parametrize("name", ["segments.parquet", "segments.json"])
@pytest.mark.parametrize(("mutate", "record", "message"), CASES, ids=[c[0].__name__ for c in CASES])
def test_untrustworthy_records_exit_2_with_one_line(tmp_path, capsys, name, mutate, record, message):
    segs = tmp_path / "segs"
    recs = make_segment_records(n_clips=2, n_segments=3)
    mutate(recs)
    write_segment_files(segs, recs)
    path = segs / "metadata" / name
    out = tmp_path / "ds"
    result = run_in_process(capsys, "build-dataset", "--segments-path", path, "--output-dir", out)
    line = assert_one_line_error(result, str(path), record, message)
    assert f"(id '{recs[int(record.split()[1])]['id']}')" in line
    assert not out.exists()


def _link_file(segs, outside, video):
    """The segment's mp4 becomes a link to a file outside the segments root."""
    secret = outside / "secret.mp4"
    secret.write_bytes(b"not the user's to share")
    (segs / video).unlink()
    (segs / video).symlink_to(secret)


def _link_folder(segs, outside, video):
    """The clip's folder becomes a link to a folder outside the segments root, holding the same file names."""
    folder = segs / video.rsplit("/", 1)[0]
    for mp4 in folder.iterdir():
        (outside / mp4.name).write_bytes(b"not the user's to share")
    for mp4 in folder.iterdir():
        mp4.unlink()
    folder.rmdir()
    folder.symlink_to(outside, target_is_directory=True)


def _link_inside(segs, outside, video):
    """A link to another file inside the root: allowed."""
    (segs / video).unlink()
    (segs / video).symlink_to(segs / "metadata" / "segments.json")


@pytest.mark.parametrize("link", [_link_file, _link_folder, _link_inside])
def test_video_linked_outside_the_segments_root_exits_2(tmp_path, capsys, link):
    segs, outside = tmp_path / "segs", tmp_path / "outside"
    outside.mkdir()
    recs = make_segment_records(n_clips=2, n_segments=3)
    for rec in recs:
        (segs / rec["video"]).parent.mkdir(parents=True, exist_ok=True)
        (segs / rec["video"]).write_bytes(b"mp4")
    write_segment_files(segs, recs)
    link(segs, outside, recs[4]["video"])
    path, out = segs / "metadata" / "segments.parquet", tmp_path / "ds"
    result = run_in_process(
        capsys, "build-dataset", "--segments-path", path, "--output-dir", out, "--allow-empty-split"
    )
    if link is _link_inside:
        assert result.code == 0, result.err
        return
    row = 3 if link is _link_folder else 4  # the folder holds the clip's first segment too
    line = assert_one_line_error(result, str(path), f"record {row}", "resolves outside the video root")
    assert f"(id '{recs[row]['id']}')" in line
    assert not out.exists()


def write_parquet(path, table):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_bytes(b"PAR1 this is not parquet"), "not a readable parquet file"),
        (lambda path: path.write_bytes(b""), "not a readable parquet file"),
        (
            lambda path: write_parquet(path, pa.Table.from_pylist(make_segment_records(1, 2)).drop_columns(["video"])),
            "no column 'video'",
        ),
        (
            lambda path: write_parquet(
                path, pa.Table.from_pylist([dict(r, velocity="fast") for r in make_segment_records(1, 2)])
            ),
            "column 'velocity' has type string, expected a list of numbers",
        ),
        (
            lambda path: write_parquet(
                path, pa.Table.from_pylist([dict(r, velocity=None) for r in make_segment_records(1, 2)])
            ),
            "column 'velocity' has type null",
        ),
    ],
    ids=["garbage", "empty", "missing-column", "wrong-type", "null-column"],
)
def test_bad_parquet_exits_2_with_one_line(tmp_path, capsys, make, message):
    path = tmp_path / "segs" / "metadata" / "segments.parquet"
    path.parent.mkdir(parents=True)
    make(path)
    result = run_in_process(capsys, "build-dataset", "--segments-path", path, "--output-dir", tmp_path / "ds")
    assert_one_line_error(result, str(path), message)
    assert not (tmp_path / "ds").exists()


def test_truncated_parquet_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "segs" / "metadata" / "segments.parquet"
    write_segment_files(path.parent.parent, make_segment_records(3, 3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + data[-2000:])
    result = run_in_process(capsys, "build-dataset", "--segments-path", path, "--output-dir", tmp_path / "ds")
    assert_one_line_error(result, str(path), "parquet")


def test_null_in_a_parquet_record_names_the_record(tmp_path, capsys):
    recs = make_segment_records(2, 2)
    table = pa.Table.from_pylist(recs)
    clip = table.column("clip_id").to_pylist()
    clip[3] = None
    path = tmp_path / "segs" / "metadata" / "segments.parquet"
    write_parquet(path, table.set_column(table.schema.get_field_index("clip_id"), "clip_id", pa.array(clip)))
    result = run_in_process(capsys, "build-dataset", "--segments-path", path, "--output-dir", tmp_path / "ds")
    assert_one_line_error(result, str(path), f"record 3 (id '{recs[3]['id']}'): missing field 'clip_id'")


def test_json_that_is_not_a_list_or_is_cut_short(tmp_path, capsys):
    for text, message in (
        ("{}", "expected a JSON list of segment records, got dict"),
        ('[{"id": "a"', "not valid JSON"),
    ):
        path = tmp_path / "segments.json"
        path.write_text(text)
        result = run_in_process(capsys, "build-dataset", "--segments-path", path, "--output-dir", tmp_path / "ds")
        assert_one_line_error(result, str(path), message)
    path.write_text(json.dumps(make_segment_records(1, 2))[:-30])
    result = run_in_process(capsys, "build-dataset", "--segments-path", path, "--output-dir", tmp_path / "ds")
    assert_one_line_error(result, str(path), "not valid JSON")
