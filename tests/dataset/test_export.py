"""Exports checked against each framework's documented schema: keys, one <video> tag per video (none in answers),
system prompts where supported, registration files, and video paths that exist."""

import json
import runpy
from pathlib import Path

import pytest

from pipeline.cli.app import main
from pipeline.contracts.dataset_reader import load_split, read_meta
from pipeline.core.errors import PipelineError
from pipeline.stages.export.stage import ExportConfig, run


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def exports(dataset_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "qwen_video_exports"
    run(ExportConfig(dataset=dataset_dir, output_dir=out))
    return out


@pytest.fixture(scope="module")
def rows(dataset_dir) -> dict[str, dict[str, dict]]:
    """split -> id -> row with absolute paths and clean messages (the source of truth for the exports)."""
    return {s: {r["id"]: r for r in load_split(dataset_dir, s)} for s in ("train", "test")}


def texts(row: dict) -> tuple[str, str, str]:
    m = row["messages"]
    return m[0]["content"][0]["text"], m[1]["content"][1]["text"], m[2]["content"][0]["text"]


def test_qwen_vl_finetune(exports, rows, dataset_dir):
    folder = exports / "qwen-vl-finetune"
    registration = runpy.run_path(str(folder / "physicalai_av_data.py"))
    entries = registration["data_dict_entries"]
    assert set(entries) == {"physicalai_av_train", "physicalai_av_test"}
    for split in ("train", "test"):
        entry = entries[f"physicalai_av_{split}"]
        assert Path(entry["annotation_path"]) == folder.resolve() / f"{split}.jsonl"
        assert entry["data_path"] == read_meta(dataset_dir)["video_root"]
        records = read_jsonl(Path(entry["annotation_path"]))
        assert len(records) == len(rows[split])
        for rec in records:
            assert set(rec) == {"id", "video", "conversations"}
            assert not Path(rec["video"]).is_absolute()
            # qwen-vl-finetune resolves data_path / video.
            video = Path(entry["data_path"]) / rec["video"]
            assert video.is_file() and str(video) == rows[split][rec["id"]]["video"]
            human, gpt = rec["conversations"]
            assert human["from"] == "human" and gpt["from"] == "gpt"
            assert human["value"].startswith("<video>\n") and human["value"].count("<video>") == 1
            assert "<image>" not in human["value"] and "<video>" not in gpt["value"]
            system, user, answer = texts(rows[split][rec["id"]])
            assert human["value"] == f"<video>\n{system}\n\n{user}"
            assert gpt["value"] == answer
    assert "--dataset_use physicalai_av_train" in (folder / "README.md").read_text()


@pytest.mark.parametrize("framework", ["llama-factory", "ms-swift"])
def test_messages_formats(exports, rows, framework):
    folder = exports / framework
    for split in ("train", "test"):
        records = read_jsonl(folder / f"{split}.jsonl")
        assert len(records) == len(rows[split])
        by_answer = {texts(r)[2]: r for r in rows[split].values()}
        for rec in records:
            assert set(rec) == {"messages", "videos"}
            roles = [m["role"] for m in rec["messages"]]
            assert roles == ["system", "user", "assistant"]
            assert all(isinstance(m["content"], str) for m in rec["messages"])
            tags = sum(m["content"].count("<video>") for m in rec["messages"])
            assert tags == len(rec["videos"]) == 1
            assert rec["messages"][1]["content"].startswith("<video>")
            assert "<video>" not in rec["messages"][2]["content"] + rec["messages"][0]["content"]
            assert all(Path(v).is_absolute() and Path(v).is_file() for v in rec["videos"])
            row = by_answer[rec["messages"][2]["content"]]
            system, user, _ = texts(row)
            assert rec["messages"][0]["content"] == system and rec["messages"][1]["content"] == "<video>" + user
            assert rec["videos"] == [row["video"]]


def test_llama_factory_dataset_info(exports):
    folder = exports / "llama-factory"
    info = json.loads((folder / "dataset_info.json").read_text())
    assert set(info) == {"physicalai_av_train", "physicalai_av_test"}
    for name, entry in info.items():
        assert (folder / entry["file_name"]).is_file() and entry["file_name"].startswith(name.split("_")[-1])
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "messages", "videos": "videos"}
        assert entry["tags"] == {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
            "system_tag": "system",
        }
    assert f"dataset_dir: {folder.resolve()}" in (folder / "README.md").read_text()


def test_single_format_and_errors(dataset_dir, tmp_path, capsys):
    out = tmp_path / "ex"
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--dataset", str(dataset_dir), "--output_dir", str(out), "--format", "ms-swift"])
    assert exit_info.value.code == 0
    assert sorted(p.name for p in out.iterdir()) == ["export_meta.json", "ms-swift"]
    capsys.readouterr()
    for args, message in [
        (["--output-dir", str(out)], "output directory exists"),
        (["--output-dir", str(tmp_path / "x"), "--format", "axolotl"], "--format must be one of"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["export", "--dataset", str(dataset_dir), *args])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(PipelineError, match="dataset_meta.json is missing"):
        run(ExportConfig(dataset=tmp_path, output_dir=tmp_path / "y"))


def test_truncated_arrow_file_is_one_line(dataset_dir, tmp_path):
    import shutil

    from tests.cli_contract import assert_one_line_error, run_pipeline

    copy = Path(shutil.copytree(dataset_dir, tmp_path / "dataset"))
    (arrow,) = sorted((copy / "train").glob("*.arrow"))[:1]
    data = arrow.read_bytes()
    arrow.write_bytes(data[: len(data) // 2])
    result = run_pipeline("export", "--dataset", copy, "--output-dir", tmp_path / "exports")
    assert_one_line_error(result, str(arrow), "unreadable dataset shard")
    assert not (tmp_path / "exports").exists()
