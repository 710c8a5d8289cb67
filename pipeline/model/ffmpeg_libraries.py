"""Whether a serving environment can decode video by path: `transformers serve` (transformers 5.x) decodes a video
given by path or URL only through torchcodec, which loads FFmpeg's shared libraries from the system (PyAV, which
`pipeline` decodes with, bundles its own FFmpeg, so nothing else here needs them). Without them every request is
HTTP 500; `ffmpeg_problem` finds it before a server starts, by loading torchcodec's FFmpeg core in a subprocess of
the serving Python, as the server would.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping

# Debian bookworm's FFmpeg 5.1 (the set `.ci/run` installs); torchcodec takes FFmpeg 4 to 9.
FFMPEG_PACKAGES = ("libavcodec59", "libavformat59", "libavutil57", "libswscale6", "libavfilter8", "libavdevice59")
INSTALL_COMMAND = f"apt-get install -y {' '.join(FFMPEG_PACKAGES)}"
PROBE = "from torchcodec._core.ops import load_core_libraries; load_core_libraries()"
# torchcodec tries FFmpeg 9 down to 4 and reports each; the FFmpeg 5 attempt names the libraries of the packages above.
_FFMPEG5_ERROR = re.compile(r"FFmpeg version 5:.*?^OSError: (.+?)$", re.DOTALL | re.MULTILINE)


def ffmpeg_problem(python: str, env: Mapping[str, str] | None = None, timeout_s: float = 600.0) -> str | None:
    """None when torchcodec in `python`'s environment loads FFmpeg's shared libraries; else one line naming what is
    missing and the command that installs it. `env`: the subprocess's environment (default: this one's)."""
    try:
        run_env = None if env is None else dict(env)
        done = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, env=run_env, timeout=timeout_s)
    except FileNotFoundError:
        return f"{python}: not found"
    if done.returncode == 0:
        return None
    if "No module named 'torchcodec'" in done.stderr:
        return f"{python}: no torchcodec, which transformers serve decodes videos with: pip install torchcodec"
    found = _FFMPEG5_ERROR.search(done.stderr)
    detail = found.group(1).strip() if found else (done.stderr.strip().splitlines() or ["no output"])[-1]
    return (
        f"{python}: torchcodec cannot load FFmpeg's shared libraries ({detail}), which transformers serve needs to "
        f"decode videos; install them: {INSTALL_COMMAND}"
    )


__all__ = ["FFMPEG_PACKAGES", "INSTALL_COMMAND", "ffmpeg_problem"]
