"""`pipeline prepare` and `pipeline segment` on Ray's local cluster (2 CPUs, one cluster for the module).

Ray starts in-process once (`ray_cluster`); each run's `RayEngine` joins it and leaves it running, and the fixture
stops it at the end of the module.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import tracemalloc
from functools import partial
from itertools import pairwise
from pathlib import Path

import pytest

from pipeline.engines.base import ChunkWork, ClipOps
from pipeline.engines.local import LocalEngine
from pipeline.engines.ray_engine import WORK_MODULES, RayEngine
from pipeline.stages.segment import stage as segment
from pipeline.stages.segment.config import SegmentConfig
from pipeline.standins.hub_server import serve_repo
from pipeline.standins.repo import DEFAULT_CAMERA
from tests.fixtures.prepare_fixtures import (
    PREPARE_SEGMENTS,
    assert_same_outputs,
    assert_targets_match_truth,
    dying_cut_skip_reason,
    echo_cut,
    no_record,
    run_prepare,
    skipped_record,
    timed_fetch,
)


@pytest.fixture(scope="module")
def ray_cluster():
    with RayEngine(num_cpus=2) as engine:
        import ray

        assert ray.util.get_node_ip_address() == "127.0.0.1"  # the local cluster stays on the loopback address
        yield engine


def repo_path(repo, feature: str, chunk: int) -> str:
    return repo.chunk_path(feature, chunk).relative_to(repo.root).as_posix()


class StopAfter:
    """A progress sink that raises KeyboardInterrupt (as Ctrl-C would) once `n` clips have been aggregated."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        self.seen += n
        if self.seen >= self.n:
            raise KeyboardInterrupt

    def finish(self) -> None:
        pass


def test_worker_warm_up_imports_the_work_and_only_logs_a_failure(ray_cluster, caplog):
    import ray

    @ray.remote(num_cpus=1)
    def imported() -> bool:
        return all(name in sys.modules for name in WORK_MODULES)

    assert ray_cluster.warm_s > 0 and ray_cluster.warm_up(WORK_MODULES)  # warmed at start-up, and again here
    assert ray.get([imported.remote() for _ in range(4)]) == [True] * 4
    with caplog.at_level(logging.WARNING, logger="pipeline.engines.ray_engine"):
        assert ray_cluster.warm_up(("pipeline.no_such_module",)) == set()
    assert "could not import pipeline.no_such_module" in caplog.text


def test_every_worker_has_imported_the_work_before_its_first_task(ray_cluster, tmp_path):
    import ray

    # More CPU-less tasks than workers were warmed (2 CPUs + 1), each held until 4 run at once: Ray must start new
    # worker processes for them, however slowly they start.
    together = 4

    @ray.remote(num_cpus=0)
    def imported_at_start(barrier: str) -> tuple[int, bool]:
        ready = all(name in sys.modules for name in ("pandas", *WORK_MODULES))
        (Path(barrier) / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(Path(barrier).iterdir())) < together and time.monotonic() < deadline:
            time.sleep(0.05)
        return os.getpid(), ready

    results = ray.get([imported_at_start.remote(str(tmp_path)) for _ in range(6)])
    assert len({pid for pid, _ in results}) >= together  # more workers than the warm-up started
    assert all(ready for _, ready in results)


def test_workers_of_a_local_cluster_run_the_drivers_interpreter_at_its_priority(ray_cluster):
    """Under `uv run` (as CI runs the tests), Ray would start its workers through `uv run` in a packaged copy of
    the working directory, with a second venv, and at nice 15; the engine's local cluster turns both off."""
    import os

    import ray

    @ray.remote(num_cpus=1)
    def where() -> tuple[str, dict, int]:
        return sys.executable, dict(ray.get_runtime_context().runtime_env), os.nice(0)

    executable, runtime_env, niceness = ray.get(where.remote())
    assert executable == sys.executable
    assert "py_executable" not in runtime_env and "working_dir" not in runtime_env
    assert niceness == os.nice(0)


def test_ray_matches_local_record_for_record_and_byte_for_byte(ray_cluster, small_hub, small_repo, tmp_path):
    local = run_prepare(tmp_path / "local", engine=LocalEngine(2))
    on_ray = run_prepare(tmp_path / "ray", engine=RayEngine())
    assert (on_ray.segments.clips, on_ray.segments.done, on_ray.segments.segments) == (4, 4, 12)
    counts = ("clips", "done", "skipped", "reused", "segments")
    assert [getattr(on_ray.segments, k) for k in counts] == [getattr(local.segments, k) for k in counts]
    assert_targets_match_truth(tmp_path / "ray" / "out", small_repo)
    assert_same_outputs(tmp_path / "local" / "out", tmp_path / "ray" / "out")
    for engine in ("local", "ray"):
        assert not list((tmp_path / engine / "src").rglob("*.zip"))  # no source zip left


def test_a_nodes_chunk_downloads_run_one_at_a_time(ray_cluster, tmp_path):
    """With 2 chunks in flight, the second chunk's download starts when the first one's ends (so the first chunk's
    cuts start as early as they can), and the window still keeps it ahead of the cuts."""
    works = [ChunkWork(c, (f"clip{c}",), partial(timed_fetch, tmp_path, c, 0.5)) for c in range(3)]
    ops = ClipOps(config=None, cut=echo_cut, skipped=skipped_record, reused=no_record)
    with RayEngine() as engine:
        results = list(engine.run_chunks(works, ops, max_in_flight=2))
    assert results == [(f"clip{c}", {"job": f"clip{c}"}) for c in range(3)]
    spans = [json.loads((tmp_path / f"fetch_{c}.json").read_text()) for c in range(3)]
    assert all(later[0] >= earlier[1] for earlier, later in pairwise(spans)), spans


def test_connection_fault_is_retried_and_the_run_completes(ray_cluster, small_hub, small_repo, tmp_path):
    camera = repo_path(small_repo, DEFAULT_CAMERA, 1)
    # Six cut transfers: huggingface_hub's own 5 retries run out, the chunk download's retry then succeeds.
    small_hub.inject_cut(camera, after_bytes=2000, times=6)
    result = run_prepare(tmp_path, engine=RayEngine())
    assert result.segments.done == 4 and result.segments.skipped == 0
    assert [r.path for r in small_hub.data_gets()].count(camera) == 7
    assert_targets_match_truth(tmp_path / "out", small_repo)


def test_a_cut_whose_worker_dies_is_retried_then_recorded_as_skipped(ray_cluster, tmp_path):
    """A worker that dies mid-cut (killed, crashed) costs its clip one attempt: retried up to `retries` times on a
    new worker, then the clip is skipped with the reason, and the other clips are not affected."""
    assert "after 2 retries" in dying_cut_skip_reason(RayEngine(retries=2), tmp_path)


def test_interrupted_run_resumes_without_fetching_finished_chunks(ray_cluster, small_hub, small_repo, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_prepare(tmp_path, engine=RayEngine(), progress=StopAfter(2))  # Ctrl-C once chunk 0 is aggregated
    out = tmp_path / "out"
    assert not (out / "metadata" / "segments.json").exists() and not list(out.rglob("*.tmp"))
    records = {p.stem for p in out.glob("metadata/clips/*/*.json")}
    assert {c.clip_id for c in small_repo.clips if c.chunk == 0} <= records
    # The cancelled cuts stopped cleanly: every mp4 left belongs to a clip whose record was written.
    assert {p.parent.name for p in out.rglob("*.mp4")} <= records

    small_hub.reset_counts()
    result = run_prepare(tmp_path, engine=RayEngine())
    fetched = {r.path for r in small_hub.data_gets()}
    assert not fetched & {repo_path(small_repo, f, 0) for f in (DEFAULT_CAMERA, "egomotion")}
    assert 0 in result.complete_chunks and result.segments.done == 4
    assert not list((tmp_path / "src").rglob("*.zip")) and not list(out.rglob("*.tmp"))
    assert_targets_match_truth(out, small_repo)


def test_driver_memory_does_not_grow_with_the_chunk_count(ray_cluster, eight_chunk_repo, use_hub, tmp_path, caplog):
    # Info records are not created (pytest keeps every captured record: that would grow with the chunk count).
    caplog.set_level(logging.WARNING)
    peaks = {}
    with serve_repo(eight_chunk_repo.root) as server:
        use_hub(server)
        run_prepare(tmp_path / "warm-up", engine=RayEngine(), chunks=("0-1",))  # one-time imports and caches
        # Each size twice, the lower peak kept: a one-off allocation under load is not growth with the chunk count.
        for n, attempt in ((2, 0), (8, 0), (2, 1), (8, 1)):
            tracemalloc.start()
            try:
                result = run_prepare(tmp_path / f"{n}-{attempt}", engine=RayEngine(), chunks=(f"0-{n - 1}",))
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert result.segments.done == n
            peaks[n] = min(peaks.get(n, peak), peak)
    assert peaks[8] <= 1.2 * peaks[2], peaks


def test_segment_engine_ray_matches_local(ray_cluster, small_repo, tmp_path):
    configs = {
        name: SegmentConfig(input_dir=small_repo.root, output_dir=tmp_path / name, **PREPARE_SEGMENTS)
        for name in ("local", "ray")
    }
    segment.run(configs["local"], engine=LocalEngine(2))
    summary = segment.run(configs["ray"], engine=RayEngine())
    assert (summary.clips, summary.done, summary.segments) == (4, 4, 12)
    assert_same_outputs(tmp_path / "local", tmp_path / "ray")
    manifest = json.loads((tmp_path / "ray" / "metadata" / "manifest.json").read_text())
    assert [c["status"] for c in manifest["clips"]] == ["done"] * 4
