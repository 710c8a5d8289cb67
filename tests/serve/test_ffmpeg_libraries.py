"""Without FFmpeg's shared libraries `transformers serve` answers HTTP 500 to every video request (its torchcodec
decoder cannot load): `serve-model --engine transformers` and the test harness's `launch` stop first, with one line
naming what is missing and the apt-get command that installs it.

The libraries are made unloadable for real, in a subprocess: its loader search path (`LD_LIBRARY_PATH`, searched
before the system's) holds a `libavcodec.so.N` for every FFmpeg major torchcodec tries that is not FFmpeg's (a
copy of zlib), so torchcodec's FFmpeg core fails to load just as on a machine without them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import PipelineError
from pipeline.model.ffmpeg_libraries import INSTALL_COMMAND, ffmpeg_problem
from tests.cli_contract import assert_one_line_error, run_pipeline


@pytest.fixture(scope="module")
def no_ffmpeg_env(tmp_path_factory) -> dict[str, str]:
    """Environment variables under which no FFmpeg libavcodec (58-62, FFmpeg 4 to 9) loads."""
    import ctypes.util

    zlib = ctypes.util.find_library("z")
    source = next(
        p
        for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib")
        if (p := Path(d) / zlib).is_file()
    )
    fake = tmp_path_factory.mktemp("no_ffmpeg")
    for major in range(58, 63):
        shutil.copy(source, fake / f"libavcodec.so.{major}")
    return {"LD_LIBRARY_PATH": str(fake)}


def test_the_probe_names_the_missing_libraries_and_the_install_command(no_ffmpeg_env):
    import os

    problem = ffmpeg_problem(sys.executable, env=os.environ | no_ffmpeg_env)
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"{sys.executable}: torchcodec cannot load FFmpeg's shared libraries (")
    assert "libavcodec.so.59" in problem and problem.endswith(INSTALL_COMMAND)


def test_the_probe_passes_where_the_libraries_load():
    if not Path("/usr/lib/x86_64-linux-gnu/libavcodec.so.59").exists():
        pytest.skip("FFmpeg 5.1's shared libraries are not installed here")
    assert ffmpeg_problem(sys.executable) is None


def test_serve_model_transformers_stops_with_one_line(no_ffmpeg_env, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    result = run_pipeline("serve-model", run_dir, "--engine", "transformers", env=no_ffmpeg_env)
    line = assert_one_line_error(result, "torchcodec")
    assert INSTALL_COMMAND in line and "libavcodec.so.59" in line


def test_the_harness_launch_stops_before_starting_a_server(no_ffmpeg_env, tmp_path, monkeypatch):
    from pipeline.standins.transformers_serve import launch

    for name, value in no_ffmpeg_env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(PipelineError, match="apt-get install -y libavcodec59"):
        launch(tmp_path, 1)
