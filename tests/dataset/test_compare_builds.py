"""`pipeline compare-builds A B`: the clips added, removed and moved between two builds, with both builds' split
methods and revisions; an unreadable build is one line and exit 2."""

from __future__ import annotations

import json

from tests.cli_contract import assert_one_line_error, run_in_process
from tests.dataset.test_heldout import build, drive_records, sides


def test_compare_builds_names_added_removed_and_moved_clips(tmp_path, capsys):
    first = drive_records(n_drives=10, clips_per_drive=2)
    extra = drive_records(n_drives=4, clips_per_drive=2, first_drive=10)
    for rec in extra:
        rec["chunk"] = 1
    a, _ = build(tmp_path, first, name="a", test_ratio=0.4, seed=42)
    b, _ = build(tmp_path, first[4:] + extra, name="b", test_ratio=0.4, seed=7)  # drops the first 2 clips
    side_a, side_b = sides(a), sides(b)
    of_a = {c: s for s, clips in side_a.items() for c in clips}
    of_b = {c: s for s, clips in side_b.items() for c in clips}
    expected_moved = {
        move: sorted(c for c in of_a.keys() & of_b.keys() if f"{of_a[c]}->{of_b[c]}" == move)
        for move in ("train->test", "test->train")
    }
    assert any(expected_moved.values())  # the new seed moves some drives: the case the command is for

    out = tmp_path / "compare.json"
    result = run_in_process(capsys, "compare-builds", a, b, "--json", out)

    assert result.code == 0, result.err
    report = json.loads(out.read_text())
    assert report["added"] == {s: sorted(side_b[s] - of_a.keys()) for s in ("train", "test")}
    assert sum(map(len, report["added"].values())) == 8
    assert report["removed"] == {s: sorted(side_a[s] - of_b.keys()) for s in ("train", "test")}
    assert sum(map(len, report["removed"].values())) == 2
    assert report["moved"] == expected_moved
    assert report["unchanged"] == sum(of_a[c] == of_b[c] for c in of_a.keys() & of_b.keys())
    assert report["a"]["split_by"] == report["b"]["split_by"] == "drive"
    assert (report["a"]["seed"], report["b"]["seed"]) == (42, 7)
    assert report["a"]["revision"] == "unknown"  # built from segments of no downloaded revision
    lines = result.out.splitlines()
    assert lines[0].startswith(f"A: {a}: revision unknown; split by drive (method drive-blake2b-v1, seed 42")
    assert lines[1].startswith(f"B: {b}: ")
    assert "added in B: 8 clip(s)" in result.out and "removed from A: 2 clip(s)" in result.out
    assert result.out.count("warning: moved clips") == 1


def test_an_unreadable_build_is_one_line(tmp_path, capsys):
    a, _ = build(tmp_path, drive_records(n_drives=6, clips_per_drive=2), name="a", test_ratio=0.5)
    missing = tmp_path / "nothing"
    assert_one_line_error(run_in_process(capsys, "compare-builds", a, missing), str(missing))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_in_process(capsys, "compare-builds", empty, a), "dataset_meta.json")
