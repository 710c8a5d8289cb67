"""The Hub token never leaves the process: with a recognisable HF_TOKEN, every stage is run from the CLI (download
from the local gated server, in debug mode, then segment, build-dataset, export, evaluate) and every file they
write, plus their stdout and stderr, is searched for it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.standins.hub_server import serve_repo
from tests.cli_contract import run_pipeline

TOKEN = "hf_LeakCanary7d1f0c9e4b2a86"


def _files_holding(root: Path, needle: bytes) -> list[str]:
    hits = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                hits.append(str(path.relative_to(root)))
    return hits


def test_hf_token_is_never_written_or_printed(synthetic_repo, tmp_path):
    work = tmp_path / "work"
    env = {
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(work / "hf_home"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    data, segments, dataset = work / "data", work / "segments", work / "dataset"
    outputs = []
    with serve_repo(synthetic_repo.root, token=TOKEN) as server:
        env["HF_ENDPOINT"] = server.endpoint
        outputs.append(run_pipeline("--verbose", "download", "--chunk", "0", "-o", data, env=env))
        assert outputs[-1].code == 0, outputs[-1].err
        assert {r.status for r in server.data_gets()} == {200}  # the token was sent, and accepted
    stages = [
        ["segment", "--input-dir", data, "--output-dir", segments, "--max-clips", "3", "--size", "64x36"],
        # Three clips may all fall on one side: the split is not what this test is about.
        ["build-dataset", "--segments-path", segments / "metadata" / "segments.parquet", "--output-dir", dataset]
        + ["--allow-empty-split"],
        ["export", "--dataset", dataset, "--output-dir", work / "exports"],
    ]
    for args in stages:
        outputs.append(run_pipeline(*args, env=env))
        assert outputs[-1].code == 0, (args[0], outputs[-1].err)

    from pipeline.contracts.dataset_reader import load_split

    rows = load_split(dataset, "train")
    predictions = work / "predictions.jsonl"
    predictions.write_text(
        "".join(json.dumps({"id": r["id"], "text": r["messages"][2]["content"][0]["text"]}) + "\n" for r in rows)
    )
    outputs.append(
        run_pipeline(
            "evaluate",
            "--predictions",
            predictions,
            "--dataset",
            dataset,
            "--split",
            "train",
            "--output-dir",
            work / "report",
            env=env,
        )
    )
    assert outputs[-1].code == 0, outputs[-1].err

    written = sum(len(files) for _, _, files in os.walk(work))
    assert written > 20  # every stage wrote its outputs here (data, segments, dataset, exports, report, caches)
    assert _files_holding(work, TOKEN.encode()) == []
    for result in outputs:
        assert TOKEN not in result.out and TOKEN not in result.err
