"""A built dataset is checked again wherever it is read (`dataset_reader`, with build-dataset's own checks): a
crafted shard whose video path is absolute, climbs out with '..', holds a NUL byte or leaves the video root
through a symlink, or whose labels are not finite or physically impossible, stops `evaluate --embed-videos` and
`export` with one line naming the shard, the row and the problem, exit 2, and nothing written, so no file outside
the dataset's root is ever copied, embedded or listed."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli_contract import assert_one_line_error, run_in_process


def _set_video(row, video, column=True):
    if column:
        row["video"] = video
    for message in row["messages"]:
        for item in message["content"]:
            if item.get("video") is not None:
                item["video"] = video


def _secret(tmp_path):
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not the user's to share")
    return secret


CASES = {
    "traversal": (lambda row, root, tmp: _set_video(row, "../../../../etc/passwd"), "video escapes the video root"),
    "absolute": (lambda row, root, tmp: _set_video(row, str(_secret(tmp))), "video is an absolute path"),
    "message-only": (
        lambda row, root, tmp: _set_video(row, "/etc/passwd", column=False),
        "message video is an absolute path",
    ),
    "nul-byte": (lambda row, root, tmp: _set_video(row, "video_segments/a\x00.mp4"), "video holds a NUL byte"),
    "file-symlink": (
        lambda row, root, tmp: ((root / row["video"]).unlink(), (root / row["video"]).symlink_to(_secret(tmp))),
        "video resolves outside the video root",
    ),
    "nan-label": (
        lambda row, root, tmp: row["velocity"].__setitem__(3, float("nan")),
        "'velocity' holds a non-finite",
    ),
    "inf-history": (
        lambda row, root, tmp: row["history_velocity"].__setitem__(0, float("inf")),
        "'history_velocity' holds a non-finite",
    ),
    "sharp-curve": (
        lambda row, root, tmp: row["curvature"].__setitem__(5, 5.0),
        "'curvature' holds 5 1/m, outside [-1, 1]",
    ),
    "negative-speed": (
        lambda row, root, tmp: row["history_velocity"].__setitem__(1, -2.0),
        "'history_velocity' holds -2 m/s, outside [0, 100]",
    ),
}


def load_rows(dataset_dir):
    import datasets

    return datasets.load_from_disk(str(dataset_dir / "test")).to_list()


def _crafted(dataset_dir, tmp_path, mutate):
    """A copy of `dataset_dir` (and of its videos) whose test split's row 1 went through `mutate`; returns the copy
    and the test split's shard."""
    import datasets

    from pipeline.contracts.dataset_reader import META_FILE, features

    meta = json.loads((dataset_dir / META_FILE).read_text())
    root = tmp_path / "segments"
    shutil.copytree(meta["video_root"], root)
    crafted = tmp_path / "dataset"
    shutil.copytree(dataset_dir, crafted)
    (crafted / META_FILE).write_text(json.dumps({**meta, "video_root": str(root)}))
    rows = load_rows(dataset_dir)
    assert len(rows) >= 2
    mutate(rows[1], root, tmp_path)
    shutil.rmtree(crafted / "test")
    n = len(rows[0]["velocity"])
    datasets.Dataset.from_list(rows, features=features(n)).save_to_disk(str(crafted / "test"))
    (shard,) = (crafted / "test").glob("*.arrow")
    return crafted, shard, rows


@pytest.mark.parametrize(("mutate", "message"), CASES.values(), ids=CASES.keys())
def test_crafted_shard_stops_evaluate_and_export(dataset_dir, tmp_path, capsys, mutate, message):
    crafted, shard, rows = _crafted(dataset_dir, tmp_path, mutate)
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps({"id": r["id"], "text": "1.0,0.0"}) + "\n" for r in rows))
    where = f"row 1 (id '{rows[1]['id']}')"

    report = tmp_path / "report"
    result = run_in_process(
        capsys,
        "evaluate",
        "--dataset",
        crafted,
        "--predictions",
        predictions,
        "--embed-videos",
        "--output-dir",
        report,
    )
    assert_one_line_error(result, str(shard), where, message)
    assert not report.exists()

    exported = tmp_path / "export"
    result = run_in_process(capsys, "export", "--dataset", crafted, "--output-dir", exported)
    assert_one_line_error(result, str(shard), where, message)
    assert not exported.exists()


def test_untouched_copy_is_read(dataset_dir, tmp_path, capsys):
    """The same copy without a change (its videos under the new root, one of them a link inside it) is accepted."""

    def link_inside(row, root, tmp):
        target = root / row["video"]
        moved = target.with_name("moved.mp4")
        target.rename(moved)
        target.symlink_to(moved)

    crafted, _, _ = _crafted(dataset_dir, tmp_path, link_inside)
    result = run_in_process(capsys, "export", "--dataset", crafted, "--output-dir", tmp_path / "export")
    assert result.code == 0, result.err
    lines = (tmp_path / "export" / "ms-swift" / "test.jsonl").read_text().splitlines()
    videos = [json.loads(line)["videos"][0] for line in lines]
    assert len(videos) == len(load_rows(dataset_dir)) and all(
        v.startswith(str(tmp_path / "segments") + "/") for v in videos
    )


@pytest.mark.parametrize("case", ["absolute", "file-symlink"])
def test_crafted_shard_sends_nothing_to_a_server(dataset_dir, tiny_qwen3_vl, tmp_path, capsys, case):
    """`evaluate --server --media base64` would send the video's bytes: the crafted row stops it before any request."""
    from tests.evaluate.fake_chat_server import FakeChatServer

    mutate, message = CASES[case]
    crafted, shard, rows = _crafted(dataset_dir, tmp_path, mutate)
    out = tmp_path / "served"
    with FakeChatServer({}) as server:
        args = ["--server", server.url, "--media", "base64", "--run-dir", tiny_qwen3_vl, "--output-dir", out]
        result = run_in_process(capsys, "evaluate", "--dataset", crafted, *args)
        assert server.bodies == []
    assert_one_line_error(result, str(shard), f"row 1 (id '{rows[1]['id']}')", message)
    assert not out.exists()
