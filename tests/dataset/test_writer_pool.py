"""The build's row-writing workers (`--num-proc` > 1) run on the engines' retrying pool: a writer killed mid-job
costs only that job's try (the build ends with the same rows and files as an undisturbed one, and the bar counts
every record once); a job whose writer dies on every try stops the build with one error line and no output."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.stages.dataset import writing
from pipeline.stages.dataset.rows import RowsJob
from pipeline.stages.dataset.stage import DatasetConfig, run
from tests.cli_contract import assert_one_line_error, run_in_process
from tests.fixtures.dataset_fixtures import make_segment_records, write_segment_files

REAL_WRITE_ROWS = writing.write_rows
# The job whose writer dies (of the two that --num-proc 2 makes of the file's parts).
DOOMED_JOB = 1


class CountingProgress:
    """A ProgressSink that adds up what each loop advanced."""

    def __init__(self) -> None:
        self.done: dict[str, int] = {}
        self._current = ""

    def start(self, description: str, total: int | None, unit: str = "") -> None:
        self._current = description
        self.done[description] = 0

    def advance(self, n: int = 1) -> None:
        self.done[self._current] += n

    def describe(self, description: str) -> None:
        pass

    def finish(self) -> None:
        pass


def segments(root: Path) -> Path:
    """60 segments of 12 clips in parquet row groups of 7 (9 parts: two writing jobs), with empty videos."""
    records = make_segment_records(n_clips=12, n_segments=5)
    for rec in records:
        (root / rec["video"]).parent.mkdir(parents=True, exist_ok=True)
        (root / rec["video"]).touch()
    write_segment_files(root, records)
    return root / "metadata" / "segments.parquet"


def build(path: Path, out: Path, progress: CountingProgress | None = None) -> None:
    config = DatasetConfig(segments_path=path, output_dir=out, test_ratio=0.3, max_shard_mb=0.03, num_proc=2)
    run(config, progress=progress)


def dying_writer(attempts_dir: Path, deaths: int, kill: Callable[[], None]) -> Callable[..., dict]:
    """`write_rows`, except that job DOOMED_JOB's worker dies after its first batch (its first shard half written)
    on its first `deaths` tries; every try leaves a file in `attempts_dir`."""

    def write_rows(job: RowsJob, advance: Callable[[int], None] | None = None) -> dict:
        if job.index != DOOMED_JOB:
            return REAL_WRITE_ROWS(job, advance)
        attempt = len(list(attempts_dir.iterdir())) + 1
        (attempts_dir / f"attempt{attempt}").touch()
        if attempt > deaths:
            return REAL_WRITE_ROWS(job, advance)

        def advance_then_die(records: int) -> None:
            assert advance is not None
            advance(records)
            kill()

        return REAL_WRITE_ROWS(job, advance_then_die)

    return write_rows


def exit_at_once() -> None:
    os._exit(1)


def sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def split_files(out: Path) -> dict[str, list[str]]:
    return {split: sorted(p.name for p in (out / split).iterdir()) for split in ("train", "test")}


def split_table(out: Path, split: str) -> pa.Table:
    """Every row of a split, shard by shard in file order."""
    names = [f["filename"] for f in json.loads((out / split / "state.json").read_text())["_data_files"]]
    tables = []
    for name in names:
        with pa.OSFile(str(out / split / name)) as source, pa.ipc.open_stream(source) as reader:
            tables.append(reader.read_all())
    return pa.concat_tables(tables)


@pytest.mark.parametrize(("kill", "how"), [(exit_at_once, "exit code 1"), (sigkill_self, "exit code -9")])
def test_a_killed_writer_costs_only_its_try(tmp_path, monkeypatch, caplog, kill, how):
    path = segments(tmp_path / "segs")
    build(path, tmp_path / "undisturbed")

    attempts = tmp_path / "attempts"
    attempts.mkdir()
    monkeypatch.setattr(writing, "write_rows", dying_writer(attempts, deaths=1, kill=kill))
    progress = CountingProgress()
    with caplog.at_level(logging.WARNING, logger="pipeline.engines.pool"):
        build(path, tmp_path / "retried", progress)

    assert sorted(p.name for p in attempts.iterdir()) == ["attempt1", "attempt2"]
    assert f"row-writing job {DOOMED_JOB} (parts 4-8): worker died ({how}); trying the job again" in caplog.text
    assert progress.done["writing rows"] == 60  # the dead try's batch is not counted twice
    # The same files (no shard of the dead try left over) and the same rows, shard by shard.
    assert split_files(tmp_path / "retried") == split_files(tmp_path / "undisturbed")
    for split in ("train", "test"):
        retried, undisturbed = split_table(tmp_path / "retried", split), split_table(tmp_path / "undisturbed", split)
        assert retried.num_rows > 0 and retried.equals(undisturbed)
        examples = f"{split}_examples.json"
        assert (tmp_path / "retried" / examples).read_text() == (tmp_path / "undisturbed" / examples).read_text()


def test_a_writer_that_always_dies_stops_the_build_with_one_line(tmp_path, monkeypatch, capsys):
    path = segments(tmp_path / "segs")
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    monkeypatch.setattr(writing, "write_rows", dying_writer(attempts, deaths=99, kill=exit_at_once))
    out = tmp_path / "ds"

    result = run_in_process(capsys, "build-dataset", "--segments-path", path, "--output-dir", out, "--num-proc", 2)

    assert_one_line_error(
        result, f"{path}: row-writing job {DOOMED_JOB} (parts 4-8) failed: worker died (exit code 1) (after 2 retries)"
    )
    assert len(list(attempts.iterdir())) == 3  # the first try and the engines' default 2 retries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attempts", "segs"]  # no output, no temp directory
