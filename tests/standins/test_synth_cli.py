"""`pipeline synth`: writes a repository, prints a one-line summary; user errors exit 2 with one line."""

import pandas as pd
import pytest

from pipeline.cli.app import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process (as the console script does); returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def test_synth_writes_a_repository(tmp_path, capsys):
    out = tmp_path / "repo"
    args = ["synth", "--output-dir", str(out), "--chunks", "2", "--clips_per_chunk", "2", "--first-chunk", "3"]
    code, stdout, stderr = run_cli(capsys, *args, "--duration", "0.5", "--size", "128x72", "--seed", "9")
    assert code == 0, stderr
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith("wrote 4 clips in 2 chunk(s) (128x72, 0.5 s, seed 9;") and summary.endswith(str(out))
    index = pd.read_parquet(out / "clip_index.parquet")
    assert sorted(index["chunk"].tolist()) == [3, 3, 4, 4]
    assert (out / "camera/camera_front_wide_120fov/camera_front_wide_120fov.chunk_0004.zip").is_file()

    code, _, stderr = run_cli(capsys, *args, "--duration", "0.5", "--size", "128x72", "--seed", "9")
    assert code == 2
    expected = f"error: --output-dir {out} already exists (pass --overwrite to replace it)"
    assert stderr.strip().splitlines() == [expected]
    code, stdout, stderr = run_cli(capsys, *args, "--duration", "0.5", "--width", "160", "--height", "90", "--force")
    assert code == 0, stderr
    assert "(160x90, 0.5 s, seed 0;" in stdout


@pytest.mark.parametrize("size", ["100x50", "12ax3", "640"])
def test_synth_rejects_bad_size(tmp_path, capsys, size):
    code, _, stderr = run_cli(capsys, "synth", "--output-dir", str(tmp_path / "r"), "--size", size)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --size {size}") and "Traceback" not in stderr
    assert not (tmp_path / "r").exists()
