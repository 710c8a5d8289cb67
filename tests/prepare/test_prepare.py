"""`pipeline prepare` on the local engine over the local Hub server, and the engine-independent errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.engines.base import ChunkWork, ClipOps
from pipeline.engines.local import LocalEngine
from pipeline.standins.repo import DEFAULT_CAMERA
from tests.cli_contract import assert_one_line_error, run_in_process
from tests.fixtures.prepare_fixtures import (
    assert_targets_match_truth,
    dying_cut,
    dying_cut_skip_reason,
    no_record,
    run_prepare,
    skipped_record,
)


def zips(root: Path) -> list[Path]:
    return sorted(root.rglob("*.zip"))


def test_prepare_cuts_every_chunk_deletes_sources_and_rerun_fetches_nothing(small_hub, small_repo, tmp_path):
    result = run_prepare(tmp_path)
    out = tmp_path / "out"
    assert result.chunks == [0, 1] and result.complete_chunks == []
    assert (result.segments.clips, result.segments.done, result.segments.segments) == (4, 4, 12)
    assert_targets_match_truth(out, small_repo)
    assert zips(tmp_path / "src") == []  # every chunk's zips were deleted once it was cut
    assert not list((tmp_path / "src").rglob("*.incomplete"))
    fetched = {r.path for r in small_hub.data_gets()}
    cameras = {small_repo.chunk_path(DEFAULT_CAMERA, c).relative_to(small_repo.root).as_posix() for c in (0, 1)}
    assert cameras <= fetched
    # The same layout as `pipeline segment`, and the manifest exactly as json.dumps(indent=2) writes it.
    for name in ("segments.json", "segments.parquet", "manifest.json", "segment_config.json"):
        assert (out / "metadata" / name).is_file()
    text = (out / "metadata" / "manifest.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    assert [c["status"] for c in json.loads(text)["clips"]] == ["done"] * 4

    small_hub.reset_counts()
    before = (out / "metadata" / "segments.json").stat().st_mtime_ns
    again = run_prepare(tmp_path)
    assert small_hub.data_gets() == []  # complete chunks: not one data request
    assert again.complete_chunks == [0, 1] and again.segments.reused == 4
    assert (out / "metadata" / "segments.json").stat().st_mtime_ns == before


def test_keep_source_and_one_chunk(small_hub, small_repo, tmp_path):
    result = run_prepare(tmp_path, chunks=("1",), keep_source=True, max_chunks_in_flight=1)
    assert result.chunks == [1] and result.segments.clips == 2
    kept = [p.relative_to(tmp_path / "src").as_posix() for p in zips(tmp_path / "src")]
    assert kept == sorted(
        p.relative_to(small_repo.root).as_posix()
        for p in (small_repo.chunk_path(DEFAULT_CAMERA, 1), small_repo.chunk_path("egomotion", 1))
    )


def test_prepare_split_keeps_only_that_split(small_hub, small_repo, tmp_path):
    split = small_repo.clips[0].split
    result = run_prepare(tmp_path, split=split)
    manifest = json.loads((tmp_path / "out" / "metadata" / "manifest.json").read_text())
    assert {c["clip_id"] for c in manifest["clips"]} == {c.clip_id for c in small_repo.clips if c.split == split}
    assert result.segments.clips == sum(c.split == split for c in small_repo.clips)


def test_a_local_worker_that_dies_costs_only_its_clip_one_attempt(tmp_path):
    """A pool worker that dies mid-cut (killed, crashed): its clip is tried again on a new worker up to `retries`
    times, then skipped with the reason; the other clips, and the chunks after it, are not affected."""
    reason = dying_cut_skip_reason(LocalEngine(workers=2, retries=2), tmp_path)
    assert reason == "worker died (exit code 1) (after 2 retries)"

    ops = ClipOps(config=tmp_path, cut=dying_cut, skipped=skipped_record, reused=no_record)
    works = [
        ChunkWork(0, (("c0_dies", 99), ("c0_ok", 0)), fetch=lambda: None),
        ChunkWork(1, (("c1_dies_once", 1),), fetch=lambda: None),
    ]
    with LocalEngine(workers=2, retries=1) as engine:
        results = list(engine.run_chunks(works, ops, max_in_flight=2))
    assert results == [
        (("c0_dies", 99), {"job": ("c0_dies", 99), "skipped": "worker died (exit code 1) (after 1 retry)"}),
        (("c0_ok", 0), {"job": "c0_ok", "attempts": 1}),
        (("c1_dies_once", 1), {"job": "c1_dies_once", "attempts": 2}),
    ]
    assert len(list(tmp_path.glob("c0_dies.attempt*"))) == 2


def test_unreachable_ray_address_is_one_line_exit_2(small_repo, tmp_path, capsys):
    args = ("segment", "--input-dir", small_repo.root, "--output-dir", tmp_path, "--engine", "ray")
    result = run_in_process(capsys, *args, "--ray-address", "127.0.0.1:9")
    line = assert_one_line_error(result, "--ray-address 127.0.0.1:9", "no Ray cluster answers there")
    assert "ray start --head" in line


def test_engine_ray_without_ray_names_the_package(small_repo, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = run_in_process(
        capsys, "segment", "--input-dir", small_repo.root, "--output-dir", tmp_path, "--engine", "ray"
    )
    assert_one_line_error(result, "--engine ray", "the 'ray' package is not installed (`uv add ray`")


def test_unknown_engine_is_a_usage_error(small_repo, tmp_path, capsys):
    result = run_in_process(
        capsys, "segment", "--input-dir", small_repo.root, "--output-dir", tmp_path, "--engine", "x"
    )
    assert_one_line_error(result, "--engine 'x': expected one of local, ray")


def test_help_and_data_stages_do_not_import_ray():
    code = (
        "import sys; from pipeline.cli.app import app; "
        "import pipeline.stages.prepare.stage, pipeline.stages.segment.stage, pipeline.engines.local; "
        "from typer.testing import CliRunner; r = CliRunner().invoke(app, ['prepare', '--help']); "
        "assert r.exit_code == 0 and '--max-chunks-in-flight' in r.output, r.output; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
