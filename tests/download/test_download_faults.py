"""`pipeline download` under hostile conditions: empty and absurd chunk specs, a transient HTTP 500, a full disk,
a hash retry on the byte bar, a file changed behind its size and mtime (--verify), and the fault-injecting
`pipeline serve` flags driven from the CLI."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.av import catalog
from pipeline.core.errors import PipelineError
from pipeline.stages.download import files as download_files
from pipeline.stages.download import stage as download
from pipeline.stages.download import transfer as download_transfer
from pipeline.stages.download.config import DownloadConfig
from pipeline.standins.hub_server import serve_repo
from pipeline.standins.server_process import free_port
from tests.cli_contract import assert_one_line_error, run_in_process, run_pipeline
from tests.download.test_download import CAM, EGO, INDEX, assert_identical
from tests.fixtures.synthetic_fixtures import make_synthetic_repo


@pytest.mark.parametrize("spec", ["", " ", ","])
def test_empty_chunk_spec_exits_2(hub_server, use_hub, tmp_path, capsys, spec):
    server = use_hub(hub_server)
    server.reset_counts()
    result = run_in_process(capsys, "download", "--chunk", spec, "--output-dir", tmp_path / "data")
    assert_one_line_error(result, "--chunk", "no chunk id given")
    assert server.data_gets() == []


def test_huge_range_exits_2_at_once(hub_server, use_hub, tmp_path, capsys):
    server = use_hub(hub_server)
    server.reset_counts()
    start = time.monotonic()
    result = run_in_process(capsys, "download", "--chunk", "0-1000000000000", "--output-dir", tmp_path / "data")
    elapsed = time.monotonic() - start
    line = assert_one_line_error(result, "--chunk", "unknown chunk id(s) 2-1000000000000", "valid chunk ids")
    assert line.endswith("(valid chunk ids in clip_index.parquet: 0-1)")
    assert [r.path for r in server.data_gets() if r.path not in INDEX] == []
    assert elapsed < 10, elapsed  # generous for a loaded machine; expanding the range first never finishes


def test_ranges_are_checked_without_expanding():
    available = range(0, 3146)
    assert catalog.select_chunks([(3, 5), (0, 0), (4, 9)], available) == [0, 3, 4, 5, 6, 7, 8, 9]
    with pytest.raises(PipelineError, match=r"unknown chunk id\(s\) 3146-20000000, 1000000000000 \("):
        catalog.select_chunks([(0, 20_000_000), (10**12, 10**12)], available)
    with pytest.raises(PipelineError, match=r"unknown chunk id\(s\) 3-4 \(valid chunk ids .*: 0-2, 5, 7\)"):
        catalog.select_chunks([(2, 5)], [0, 1, 2, 5, 7])
    with pytest.raises(PipelineError, match=r"--chunk: the ranges span 1,000,000,000,001 chunk ids"):
        catalog.parse_chunk_ids(["0-1000000000000"])  # the segment CLI's parser: refused before expanding


def test_segment_refuses_empty_and_huge_chunk_specs(tmp_path):
    for spec, message in [("", "no chunk id given"), ("0-1000000000000", "span 1,000,000,000,001 chunk ids")]:
        result = run_pipeline("segment", "--chunk", spec, "--output-dir", tmp_path / "o", timeout=60)
        assert_one_line_error(result, "--chunk", message)


@pytest.fixture
def no_pause(monkeypatch):
    import huggingface_hub.file_download as fd

    monkeypatch.setattr(download_transfer, "RETRY_PAUSE_S", 0.0)
    monkeypatch.setattr(fd.time, "sleep", lambda s: None)


def test_a_single_http_500_is_retried(fresh_hub_server, use_hub, synthetic_repo, tmp_path, capsys, no_pause):
    server = use_hub(fresh_hub_server)
    server.inject_status(CAM.format(0), 500)
    out = tmp_path / "data"
    result = run_in_process(capsys, "download", "--chunk", "0", "--output-dir", out)
    assert result.code == 0, result.err
    assert [r.status for r in server.data_gets() if r.path == CAM.format(0)] == [500, 200]
    assert_identical(out, synthetic_repo.root, INDEX + [EGO.format(0), CAM.format(0)])


def test_a_persistent_http_503_fails_after_the_retries(fresh_hub_server, use_hub, tmp_path, capsys, no_pause):
    server = use_hub(fresh_hub_server)
    server.inject_status(EGO.format(0), 503, times=100)
    result = run_in_process(capsys, "download", "--chunk", "0", "--output-dir", tmp_path / "data")
    assert_one_line_error(result, "1 of 5 files not downloaded", EGO.format(0), "HTTP 503")
    assert [r.status for r in server.data_gets() if r.path == EGO.format(0)] == [503] * (
        download_transfer.HTTP_RETRIES + 1
    )


class _DiskFullAfter:
    """A partial file that accepts `room` bytes, then fails as a full disk does."""

    def __init__(self, path: Path, room: int) -> None:
        self._f = path.open("ab")
        self._room = room

    def write(self, data: bytes) -> int:
        if len(data) > self._room:
            self._f.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_disk_full_mid_download_is_one_line(fresh_hub_server, use_hub, synthetic_repo, tmp_path, capsys, monkeypatch):
    server = use_hub(fresh_hub_server)
    monkeypatch.setattr(download_transfer, "_open_partial", lambda path: _DiskFullAfter(path, room=4096))
    out = tmp_path / "data"
    result = run_in_process(capsys, "download", "--chunk", "0", "--max-workers", "1", "--output-dir", out)
    line = assert_one_line_error(result, "no space left on device", "re-run")
    assert "network failure" not in result.err and str(out / download_files.CACHE_DIR) in line
    monkeypatch.undo()  # space freed: the re-run resumes and completes
    use_hub(server)
    result = run_in_process(capsys, "download", "--chunk", "0", "--output-dir", out)
    assert result.code == 0, result.err
    assert_identical(out, synthetic_repo.root, INDEX + [EGO.format(0), CAM.format(0)])
    assert any(r.range is not None for r in server.data_gets())  # resumed, not restarted


class _RecordingBar:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.peak = 0

    def start(self, description, total, unit=""):
        self.total, self.done, self.peak = total or 0, 0, 0

    def advance(self, n=1):
        self.done += n
        self.peak = max(self.peak, self.done)

    def finish(self):
        pass


def test_byte_bar_does_not_overshoot_on_a_hash_retry(use_hub, tmp_path):
    repo = make_synthetic_repo(tmp_path, n_chunks=1, clips_per_chunk=1, duration_s=2.0)
    with serve_repo(repo.root) as server:
        use_hub(server)
        cam = repo.root / CAM.format(0)
        data = bytearray(cam.read_bytes())
        data[len(data) // 2] ^= 0xFF  # served bytes no longer match the hash the server announced
        cam.write_bytes(bytes(data))
        bar = _RecordingBar()
        config = DownloadConfig(output_dir=tmp_path / "data", chunks=("0",), endpoint=server.endpoint)
        with pytest.raises(PipelineError, match="size or hash differs from the Hub's after two downloads"):
            download.run(config, progress=bar)
    assert [r.path for r in server.data_gets()].count(CAM.format(0)) == 2
    assert 0 < bar.peak <= bar.total and bar.done <= bar.total


def test_verify_rehashes_a_file_changed_behind_its_size_and_mtime(
    fresh_hub_server, use_hub, synthetic_repo, tmp_path, capsys
):
    server = use_hub(fresh_hub_server)
    out = tmp_path / "data"
    assert run_in_process(capsys, "download", "--chunk", "0", "--output-dir", out).code == 0
    victim = out / CAM.format(0)
    stat = victim.stat()
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    server.reset_counts()  # the trade-off: without --verify, size + mtime are trusted (no byte is read)
    assert run_in_process(capsys, "download", "--chunk", "0", "--output-dir", out).code == 0
    assert server.data_gets() == [] and victim.read_bytes() == bytes(data)

    server.reset_counts()
    result = run_in_process(capsys, "download", "--chunk", "0", "--verify", "--output-dir", out)
    assert result.code == 0, result.err
    assert [r.path for r in server.data_gets()] == [CAM.format(0)]
    assert_identical(out, synthetic_repo.root, INDEX + [EGO.format(0), CAM.format(0)])


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("pipeline serve did not start listening")


def _hub_env(endpoint: str, hf_home: Path, token: str | None) -> dict[str, str]:
    env = {"HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(hf_home), "HF_TOKEN": token or ""}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    return env


def test_serve_fault_flags_from_the_cli(synthetic_repo, tmp_path):
    """`pipeline serve --gated --fail-every 3 --cut-after 5000`: a download with the token still ends identical."""
    token = "hf_serve_fault_test_token"
    port = free_port()
    cmd = [sys.executable, "-m", "pipeline", "serve", str(synthetic_repo.root), "--port", str(port), "--gated"]
    cmd += ["--fail-every", "3", "--cut-after", "5000"]
    server = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_TOKEN": token}
    )
    try:
        _wait_listening(port, server)
        endpoint = f"http://127.0.0.1:{port}"
        out = tmp_path / "data"
        refused = run_pipeline("download", "--chunk", "0", "-o", out, env=_hub_env(endpoint, tmp_path / "h", None))
        assert_one_line_error(refused, "gated dataset", "HF_TOKEN")
        result = run_pipeline("download", "--chunk", "0", "-o", out, env=_hub_env(endpoint, tmp_path / "h", token))
        assert result.code == 0, result.err
    finally:
        server.terminate()
        stdout, stderr = server.communicate(timeout=30)
    assert_identical(out, synthetic_repo.root, INDEX + [EGO.format(0), CAM.format(0)])
    assert "fault injection: 1 in 3 file requests answers HTTP 500" in stdout
    assert "fault injection: each file's first GET is cut after 5000 bytes" in stdout
    assert stderr.count("fault injection: HTTP 500 for") >= 1
    assert stderr.count("fault injection: cutting") >= 2  # both chunk zips were cut once and resumed


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["--fail-every", "1"], {}, ["--fail-every 1", "must be 0 (off) or >= 2"]),
        (["--cut-after", "0"], {}, ["--cut-after 0", "must be >= 1"]),
        (["--gated"], {"HF_TOKEN": ""}, ["--gated", "set HF_TOKEN"]),
    ],
)
def test_serve_bad_fault_flags_exit_2(synthetic_repo, args, env, names):
    assert_one_line_error(run_pipeline("serve", synthetic_repo.root, *args, env=env, timeout=60), *names)
