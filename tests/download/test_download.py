"""`pipeline download` against the local Hub server: byte-identical files, resume, no re-fetch, --all, --split,
and each user error as one line with exit code 2."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from pipeline.cli.app import main
from pipeline.stages.download import files as download_files
from pipeline.stages.download import stage as download
from pipeline.stages.download import transfer as download_transfer
from pipeline.stages.download.config import DownloadConfig
from tests.fixtures.synthetic_fixtures import make_synthetic_repo

CAM = "camera/camera_front_wide_120fov/camera_front_wide_120fov.chunk_{:04d}.zip"
EGO = "labels/egomotion/egomotion.chunk_{:04d}.zip"
# The index files the synthetic repository has (no split file); data_collection gives the drive keys (issue #32).
INDEX = ["features.csv", "clip_index.parquet", "metadata/data_collection.parquet"]


def run_cli(capsys, *args):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def error_line(err):
    """The CLI's one-line error: the only line starting with "error:", the last one, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], err
    return lines[-1]


def local_files(root):
    """Repo-relative paths under an output dir, without our cache and manifest."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".cache"]
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if rel != download.MANIFEST_NAME:
                out.add(rel)
    return out


def assert_identical(out_dir, repo_root, paths):
    assert local_files(out_dir) == set(paths)
    for rel in paths:
        assert (out_dir / rel).read_bytes() == (repo_root / rel).read_bytes(), rel


def manifest(out_dir):
    return json.loads((out_dir / download.MANIFEST_NAME).read_text())


def test_download_identical_then_rerun_fetches_nothing(hub_server, use_hub, synthetic_repo, tmp_path, capsys):
    server = use_hub(hub_server)
    server.reset_counts()
    out = tmp_path / "data"
    expected = INDEX + [p.format(c) for c in (0, 1) for p in (EGO, CAM)]

    code, stdout, err = run_cli(capsys, "download", "--chunk", "0000", "0001", "--output-dir", out)
    assert code == 0, err
    assert_identical(out, synthetic_repo.root, expected)
    assert sorted(r.path for r in server.data_gets()) == sorted(expected)  # one GET per file, no extras
    m = manifest(out)
    assert m["commit"] == server.commit and m["chunks"] == [0, 1]
    assert m["features"] == ["egomotion", "camera_front_wide_120fov"]
    assert {f["path"]: (f["status"], f["verified"], f["size"]) for f in m["files"]} == {
        p: ("downloaded", True, (synthetic_repo.root / p).stat().st_size) for p in expected
    }
    assert m["total_bytes"] == sum((synthetic_repo.root / p).stat().st_size for p in expected[len(INDEX) :])
    assert "token" not in m["config"]

    # re-run: metadata requests only, no file content
    server.reset_counts()
    code, stdout, err = run_cli(capsys, "download", "--chunk", "0-1", "--output_dir", out)
    assert code == 0, err
    assert server.data_gets() == []
    assert {f["status"] for f in manifest(out)["files"]} == {"complete"}
    assert stdout.startswith(f"0 files downloaded, {len(expected)} already complete")

    # a damaged file of the right size is caught by its hash and fetched again
    damaged = out / CAM.format(1)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    server.reset_counts()
    code, _, err = run_cli(capsys, "download", "--chunk", "0", "1", "--output-dir", out)
    assert code == 0, err
    assert [r.path for r in server.data_gets()] == [CAM.format(1)]
    assert_identical(out, synthetic_repo.root, expected)

    # --force fetches everything again
    server.reset_counts()
    code, _, err = run_cli(
        capsys, "download", "--chunk", "1", "--features", "egomotion", "--output-dir", out, "--force"
    )
    assert code == 0, err
    assert sorted(r.path for r in server.data_gets()) == sorted(INDEX + [EGO.format(1)])


def test_cut_transfer_is_retried_and_ends_identical(fresh_hub_server, use_hub, synthetic_repo, tmp_path, capsys):
    server = use_hub(fresh_hub_server)
    server.inject_cut(CAM.format(0), after_bytes=5000)
    out = tmp_path / "data"
    code, _, err = run_cli(capsys, "download", "--chunk", "0", "--output-dir", out)
    assert code == 0, err
    assert_identical(out, synthetic_repo.root, INDEX + [EGO.format(0), CAM.format(0)])
    assert [r.path for r in server.data_gets()].count(CAM.format(0)) == 2


def test_partial_file_resumes_with_range(fresh_hub_server, use_hub, synthetic_repo, tmp_path, capsys):
    """An interrupted download left N bytes: the re-run asks for `bytes=N-` only and ends identical."""
    server = use_hub(fresh_hub_server)
    out = tmp_path / "data"
    source = (synthetic_repo.root / CAM.format(0)).read_bytes()
    n = len(source) // 3
    partial = download_files.partial_path(out, CAM.format(0), hashlib.sha256(source).hexdigest())
    partial.parent.mkdir(parents=True)
    partial.write_bytes(source[:n])
    code, _, err = run_cli(capsys, "download", "--chunk", "0", "--features", "camera_front_wide_120fov", "-o", out)
    assert code == 0, err
    gets = [r for r in server.data_gets() if r.path == CAM.format(0)]
    assert [(r.range, r.status) for r in gets] == [(f"bytes={n}-", 206)]
    assert (out / CAM.format(0)).read_bytes() == source
    assert not partial.exists()
    assert [f["bytes_fetched"] for f in manifest(out)["files"] if f["path"] == CAM.format(0)] == [len(source) - n]


def test_network_failure_names_what_is_missing_and_rerun_completes(
    fresh_hub_server, use_hub, synthetic_repo, tmp_path, capsys, monkeypatch
):
    import huggingface_hub.file_download as fd

    monkeypatch.setattr(fd.time, "sleep", lambda s: None)  # huggingface_hub waits 1 s between its 5 retries
    server = use_hub(fresh_hub_server)
    server.inject_cut(EGO.format(1), after_bytes=100, times=50)
    out = tmp_path / "data"
    code, _, err = run_cli(capsys, "download", "--chunk", "0,1", "--output-dir", out)
    assert code == 2
    assert error_line(err) == (
        "error: 1 of 7 files not downloaded (first: labels/egomotion/egomotion.chunk_0001.zip: "
        "network failure (RemoteProtocolError) after retries); a re-run resumes"
    )
    assert [r.path for r in server.data_gets()].count(EGO.format(1)) == 6  # the first try + 5 retries
    assert not (out / EGO.format(1)).exists()
    statuses = {f["path"]: f["status"] for f in manifest(out)["files"]}
    assert statuses[EGO.format(1)] == "failed" and statuses[CAM.format(1)] == "downloaded"

    server.clear_cuts()
    server.reset_counts()
    code, _, err = run_cli(capsys, "download", "--chunk", "0,1", "--output-dir", out)
    assert code == 0, err
    assert [r.path for r in server.data_gets()] == [EGO.format(1)]
    assert_identical(out, synthetic_repo.root, INDEX + [p.format(c) for c in (0, 1) for p in (EGO, CAM)])


@pytest.fixture(scope="module")
def three_chunk_repo(tmp_path_factory):
    """3 chunks of 1 short clip each: the generator gives each clip a different split."""
    return make_synthetic_repo(tmp_path_factory.mktemp("three"), n_chunks=3, clips_per_chunk=1, duration_s=2.0)


def test_all_chunks(three_chunk_repo, use_hub, tmp_path, capsys):
    from pipeline.standins.hub_server import serve_repo

    with serve_repo(three_chunk_repo.root) as server:
        use_hub(server)
        out = tmp_path / "data"
        code, _, err = run_cli(capsys, "download", "--all", "--output-dir", out, "--max-workers", "2")
        assert code == 0, err
    assert_identical(out, three_chunk_repo.root, INDEX + [p.format(c) for c in (0, 1, 2) for p in (EGO, CAM)])
    assert manifest(out)["chunks"] == [0, 1, 2]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_keeps_chunks_and_clips_of_that_split(three_chunk_repo, use_hub, tmp_path, capsys, split):
    from pipeline.standins.hub_server import serve_repo

    clips = three_chunk_repo.clips_of(split=split)
    assert len(clips) == 1  # the fixture's promise
    chunk = clips[0].chunk
    with serve_repo(three_chunk_repo.root) as server:
        use_hub(server)
        out = tmp_path / "data"
        code, _, err = run_cli(capsys, "download", "--all", "--split", split, "--output-dir", out)
        assert code == 0, err
        m = manifest(out)
        assert m["chunks"] == [chunk]
        assert m["split_clips"] == {str(chunk): [clips[0].clip_id]}
        assert sorted(s["chunk"] for s in m["skipped"]) == sorted({0, 1, 2} - {chunk})
        assert_identical(out, three_chunk_repo.root, INDEX + [EGO.format(chunk), CAM.format(chunk)])

        other = next(c for c in (0, 1, 2) if c != chunk)
        code, _, err = run_cli(capsys, "download", "--chunk", other, "--split", split, "--output-dir", out)
        assert code == 2
        assert error_line(err) == f"error: --split {split}: none of the selected chunks holds a {split} clip"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chunk", "7"], "error: --chunk: unknown chunk id(s) 7 (valid chunk ids in clip_index.parquet: 0-1)"),
        (["--chunk", "0-3"], "error: --chunk: unknown chunk id(s) 2-3 (valid chunk ids in clip_index.parquet: 0-1)"),
        (["--chunk", "x1"], "error: --chunk 'x1': expected a chunk id like 0001 or a range like 0-9"),
        ([], "error: --chunk: give chunk ids (e.g. --chunk 0 or --chunk 0-9) or --all"),
        (["--chunk", "0", "--split", "dev"], "error: --split 'dev': expected one of train, val, test"),
        (["--chunk", "0", "--max-workers", "0"], "error: --max-workers 0: must be >= 1"),
        (
            ["--chunk", "0", "--revision", "v9"],
            "error: --revision v9: not found in dataset nvidia/PhysicalAI-Autonomous-Vehicles",
        ),
        (["--chunk", "0", "--repo-id", "nvidia/nope"], "error: --repo-id nvidia/nope: dataset not found on the Hub"),
        (
            ["--chunk", "0", "--confirm-threshold-gb", "1e-9"],
            "error: --yes: the download is 0.0 GB, above the 1e-09 GB threshold; re-run with --yes to confirm",
        ),
    ],
)
def test_user_errors(hub_server, use_hub, tmp_path, capsys, args, message):
    server = use_hub(hub_server)
    server.reset_counts()
    code, _, err = run_cli(capsys, "download", *args, "--output-dir", tmp_path / "data")
    assert code == 2
    assert error_line(err).startswith(message)
    chunk_gets = [r for r in server.data_gets() if r.path not in INDEX]
    assert chunk_gets == []


def test_unknown_feature_lists_valid_names(hub_server, use_hub, tmp_path, capsys):
    use_hub(hub_server)
    code, _, err = run_cli(capsys, "download", "--chunk", "0", "--features", "egomotion,camera_front", "-o", tmp_path)
    assert code == 2
    line = error_line(err)
    assert line.startswith("error: --features: unknown feature 'camera_front' (valid: egomotion, egomotion.offline,")
    assert "camera_front_wide_120fov" in line


def test_above_threshold_needs_yes(hub_server, use_hub, tmp_path, capsys):
    use_hub(hub_server)
    args = ["download", "--chunk", "0", "--features", "egomotion", "--confirm-threshold-gb", "1e-9", "-o", tmp_path]
    code, _, err = run_cli(capsys, *args, "--yes")
    assert code == 0, err
    assert (tmp_path / EGO.format(0)).is_file()


def test_not_enough_disk(hub_server, use_hub, tmp_path, capsys, monkeypatch):
    server = use_hub(hub_server)
    server.reset_counts()
    monkeypatch.setattr(download_transfer.shutil, "disk_usage", lambda p: _Usage())
    code, _, err = run_cli(capsys, "download", "--chunk", "0", "--output-dir", tmp_path / "data")
    assert code == 2
    assert error_line(err).startswith(f"error: --output-dir {tmp_path / 'data'}: not enough disk space (need 0.00 GB")
    assert [r for r in server.data_gets() if r.path not in INDEX] == []


class _Usage:
    total, used, free = 10**9, 10**9 - 1000, 1000


@pytest.mark.parametrize(("status", "gate_metadata"), [(401, True), (403, True), (401, False)])
def test_gated_repo(fresh_hub_server, use_hub, tmp_path, capsys, monkeypatch, status, gate_metadata):
    """Refused on the first request, or (as on the real Hub, where the listing is public) on the first file."""
    server = use_hub(fresh_hub_server)
    server.token = "hf_the_right_one"
    server.gate_metadata = gate_metadata
    if status == 403:
        monkeypatch.setenv("HF_TOKEN", "hf_secret_but_wrong")
    code, stdout, err = run_cli(capsys, "download", "--chunk", "0", "--output-dir", tmp_path / "data")
    assert code == 2
    assert error_line(err) == (
        f"error: access to dataset nvidia/PhysicalAI-Autonomous-Vehicles was refused (HTTP {status}, gated dataset): "
        "accept the licence on https://huggingface.co/datasets/nvidia/PhysicalAI-Autonomous-Vehicles, "
        "then run `hf auth login` or set HF_TOKEN"
    )
    assert "hf_secret_but_wrong" not in stdout + err
    assert server.data_gets() == [r for r in server.data_gets() if r.status in (401, 403)]

    monkeypatch.setenv("HF_TOKEN", "hf_the_right_one")
    code, stdout, err = run_cli(capsys, "download", "--chunk", "0", "--output-dir", tmp_path / "data")
    assert code == 0, err
    assert "hf_the_right_one" not in stdout + err
    assert "hf_the_right_one" not in (tmp_path / "data" / download.MANIFEST_NAME).read_text()


def test_download_dataset_script_help():
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]  # the repository, where the top-level scripts are
    result = subprocess.run(
        [sys.executable, str(root / "download_dataset.py"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--chunk" in result.stdout and "--split" in result.stdout


class _InterruptOnFirstBytes:
    """A progress sink that behaves like Ctrl-C as soon as the first bytes arrive."""

    def start(self, description, total, unit=""):
        self.description = description

    def advance(self, n=1):
        if self.description.startswith("downloading"):
            raise KeyboardInterrupt

    def finish(self):
        pass


def test_interrupt_stops_all_transfers_and_rerun_completes(fresh_hub_server, use_hub, synthetic_repo, tmp_path):
    server = use_hub(fresh_hub_server)
    out = tmp_path / "data"
    config = DownloadConfig(output_dir=out, chunks=("0-1",), endpoint=server.endpoint, max_workers=4)
    with pytest.raises(KeyboardInterrupt):
        download.run(config, progress=_InterruptOnFirstBytes())
    assert local_files(out) == set(INDEX)  # no chunk file was renamed into place
    assert not (out / download.MANIFEST_NAME).exists()
    result = download.run(DownloadConfig(output_dir=out, chunks=("0", "1"), endpoint=server.endpoint))
    assert len(result.downloaded) == 4
    assert_identical(out, synthetic_repo.root, INDEX + [p.format(c) for c in (0, 1) for p in (EGO, CAM)])
