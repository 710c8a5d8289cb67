"""Which source frames each segment's mp4s hold: a camera's frame clock (`ClipFrames`) and a window's request
per camera (the window's frames, or `--frames-per-camera` frames nearest given times).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.av import egomotion as ego
from pipeline.av.video import SegmentRequest
from pipeline.stages.segment.config import SegmentConfig
from pipeline.stages.segment.jobs import ClipJob, segment_video_relpath


@dataclass(frozen=True)
class ClipFrames:
    """The clip's frame clock: (F,) int64 µs frame timestamps and the timing derived from them."""

    timestamps_us: np.ndarray
    start_us: int
    frame_dt_us: int
    end_us: int


def window_requests(
    job: ClipJob, config: SegmentConfig, i: int, end_us: int, clocks: list[ClipFrames], ranges: list[np.ndarray]
) -> list[SegmentRequest] | str:
    """Window i's request for each camera (the first, then `job.more_cameras`), or why it has none.

    With `frames_per_camera` N, a camera's request holds the N frames nearest end - (N - 1 - j) * frame_spacing_s
    (j = 0..N-1) among its frames before the window's end edge (frames that two times share count once); the
    window is skipped when the earliest time lies over half a frame before the camera's first frame.
    """
    names = [None, *(c.camera for c in job.more_cameras)]
    requests = []
    for name, clock, r in zip(names, clocks, ranges, strict=True):
        first, stop = int(r[i, 0]), int(r[i, 1])
        if stop <= first:
            return "no video frame in the window" if name is None else f"no {name} frame in the window"
        path = config.output_dir / segment_video_relpath(job.chunk, job.clip_id, i, name)
        if config.frames_per_camera is None:
            requests.append(SegmentRequest(i, first, stop, path))
            continue
        n, spacing_us = config.frames_per_camera, round(config.frame_spacing_s * 1e6)
        times = end_us - (n - 1 - np.arange(n)) * spacing_us
        if times[0] < clock.timestamps_us[0] - clock.frame_dt_us // 2:
            return (
                f"{n} frames {config.frame_spacing_s:g} s apart reach before the first {name or config.camera} frame"
            )
        picked = tuple(sorted(set(ego.nearest_frames(clock.timestamps_us[:stop], times).tolist())))
        requests.append(SegmentRequest(i, picked[0], picked[-1] + 1, path, picked))
    return requests


__all__ = ["ClipFrames", "window_requests"]
