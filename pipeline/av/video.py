"""PyAV helpers: read zip members in place, decode a video once, and cut it into short H.264 segments in one pass.

The dataset's chunk zips store members uncompressed (ZIP_STORED), so a member's bytes are a contiguous range of
the zip file. Videos are opened straight from that range with libavformat's `subfile` protocol (no extraction,
no Python read callbacks in the decode loop). One pass runs as a three-stage pipeline: a decode thread
(libavcodec frame threads), a resize thread (swscale, once per frame) and encoding in the calling thread (one
libx264 encoder per open segment); PyAV releases the GIL in all three, so they overlap on the cores. Bounded
queues between the stages keep memory flat (a few 1080p frames).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import struct
import threading
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.core.atomic import temp_sibling
from pipeline.core.environment_errors import environment_fault, is_environment_fault
from pipeline.core.errors import PipelineError, VideoError

log = logging.getLogger(__name__)

# Encoded segments carry source timestamps exactly: one tick = one microsecond.
MICROSECONDS = Fraction(1, 1_000_000)
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


class UnreadableZipError(VideoError):
    """The zip itself cannot be read (missing, not a zip): every clip in it fails the same way."""


@dataclass(frozen=True)
class ZipMember:
    """Where a stored (uncompressed) zip member's bytes lie in the zip file."""

    # Path of the zip file.
    zip_path: Path
    # Member name inside the zip.
    name: str
    # Byte offset of the member's data from the start of the zip file.
    offset: int
    # Member size in bytes.
    size: int


def locate_member(zip_path: Path, name: str) -> ZipMember:
    """Find a ZIP_STORED member's byte range. Raises VideoError if the zip or member is missing or compressed."""
    zip_path = Path(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            info = zf.getinfo(name)
            if info.compress_type != zipfile.ZIP_STORED:
                raise VideoError(f"{zip_path.name}: member {name} is compressed, expected ZIP_STORED")
            with open(zip_path, "rb") as fh:
                fh.seek(info.header_offset)
                header = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
    except KeyError:
        raise VideoError(f"{zip_path.name}: member {name} is missing") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise _unreadable(err, zip_path) from None
    if header[0] != b"PK\x03\x04":
        raise VideoError(f"{zip_path.name}: bad local header for member {name}")
    offset = info.header_offset + _LOCAL_HEADER.size + header[9] + header[10]
    return ZipMember(zip_path=zip_path, name=name, offset=offset, size=info.file_size)


def _unreadable(err: BaseException, zip_path: Path) -> PipelineError:
    """An environment fault (the run stops), or the zip is unreadable (its clips are skipped)."""
    if is_environment_fault(err):
        return environment_fault(err, zip_path)
    return UnreadableZipError(f"{zip_path.name}: cannot read zip ({err})")


def read_member(zip_path: Path, name: str) -> bytes:
    """The bytes of one (small) zip member. Raises VideoError if the zip or the member is missing."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            return zf.read(name)
    except KeyError:
        raise VideoError(f"{Path(zip_path).name}: member {name} is missing") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise _unreadable(err, Path(zip_path)) from None


def open_video(source: Path | ZipMember) -> av.container.InputContainer:
    """Open an mp4 file or a stored zip member for decoding, in place. Raises VideoError if it cannot be opened."""
    if isinstance(source, ZipMember):
        url = f"subfile,,start,{source.offset},end,{source.offset + source.size},,:{source.zip_path}"
        label = f"{source.zip_path.name}:{source.name}"
    else:
        url, label = str(source), Path(source).name
    try:
        container = av.open(url, "r")
    except (av.FFmpegError, OSError) as err:
        if is_environment_fault(err):
            raise environment_fault(err, source.zip_path if isinstance(source, ZipMember) else source) from None
        raise VideoError(f"{label}: cannot open video ({err.strerror or err})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{label}: no video stream")
    return container


@dataclass(frozen=True)
class EncodeSettings:
    """How segments are encoded."""

    # Output width x height in pixels; None keeps the source size.
    size: tuple[int, int] | None = (448, 252)
    # libx264 preset: speed/size trade-off; ultrafast encodes fastest and writes the largest files (costs per frame:
    # docs/RESULTS.md, measured by benchmarks/segment_bench.py).
    preset: str = "ultrafast"
    # Constant rate factor (quality); 23 is libx264's default.
    crf: int = 23
    # libx264 tune, or None. "zerolatency" drops B-frames and lookahead: segments are 30 frames, and each
    # encoder then holds no frame queue, so memory stays flat.
    tune: str | None = "zerolatency"
    # Encoder threads per segment (0 = libx264's choice). Small frames encode fastest single-threaded while
    # the decoder keeps the other cores busy.
    threads: int = 1
    # Decoder threads (0 = libavcodec's choice, about one per core). With several clip workers on few cores,
    # one thread each scales better than intra-clip threading. Does not change the output.
    decode_threads: int = 0
    # Skip H.264's deblocking filter while decoding (less decode CPU: docs/RESULTS.md). Block edges then survive into
    # the frames, but a 4x AREA downscale averages them away; off by default (frames are then the source's).
    skip_loop_filter: bool = False
    # swscale interpolation of the one resize per frame. AREA averages (no aliasing); FAST_BILINEAR is cheaper but
    # aliases when shrinking 4x (costs per frame: docs/RESULTS.md).
    interpolation: str = "AREA"

    def __post_init__(self) -> None:
        if self.size is not None:
            w, h = self.size
            if w <= 0 or h <= 0 or w % 2 or h % 2:
                raise ValueError(f"size {w}x{h}: width and height must be positive and even (yuv420p)")


@dataclass(frozen=True)
class SegmentRequest:
    """One output segment: source frames [first_frame, stop_frame) written to `path`."""

    # Segment index within the clip.
    index: int
    # First source frame (0-based decode order), inclusive.
    first_frame: int
    # One past the last source frame.
    stop_frame: int
    # Final mp4 path (written under a temp name, renamed when complete).
    path: Path
    # Only these source frames of the range (ascending, the first is first_frame, the last stop_frame - 1); () = all.
    frames: tuple[int, ...] = ()


@dataclass(frozen=True)
class WrittenSegment:
    """What was written for one segment."""

    # Segment index within the clip.
    index: int
    # Final mp4 path.
    path: Path
    # Frames in the mp4.
    frame_count: int
    # Source timestamps of the first and last frame written, µs.
    first_frame_us: int
    last_frame_us: int
    # Size of the written frames, pixels.
    width: int
    height: int
    # File size in bytes.
    size_bytes: int


@dataclass
class _OpenSegment:
    request: SegmentRequest
    tmp: Path
    container: av.container.OutputContainer
    stream: av.video.stream.VideoStream
    first_us: int
    last_us: int = 0
    count: int = 0


_END = object()


def _decode_frames(
    container: av.container.InputContainer,
    n_needed: int,
    decode_threads: int,
    skip_loop_filter: bool,
    out: queue.Queue,
    stop: threading.Event,
) -> None:
    """Producer: decode frames [0, n_needed) in order and put (index, frame) on `out`.

    Packets after the last needed frame are demuxed (counted) but not decoded; the end marker carries
    (frames decoded, packets demuxed) so the consumer can check the frame count against the timestamps.
    """
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = decode_threads
        if skip_loop_filter:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        index = packets = 0
        for packet in container.demux(stream):
            if stop.is_set():
                return
            if packet.size:
                packets += 1
            if index >= n_needed:
                continue
            for frame in packet.decode():
                if index < n_needed:
                    _put(out, (index, frame), stop)
                index += 1
        _put(out, (_END, (index, packets)), stop)
    except BaseException as err:  # noqa: BLE001 - handed to the consumer, which re-raises it
        _put(out, (_END, err), stop)


def _resize_frames(
    inp: queue.Queue, out: queue.Queue, size: tuple[int, int] | None, interpolation: str, stop: threading.Event
) -> None:
    """Middle stage: resize each frame once (swscale, GIL released) to yuv420p at `size`."""
    try:
        while not stop.is_set():
            try:
                index, frame = inp.get(timeout=0.05)
            except queue.Empty:
                continue
            if index is not _END:
                if size is not None and (frame.width, frame.height) != size:
                    frame = frame.reformat(size[0], size[1], format="yuv420p", interpolation=interpolation)
                elif frame.format.name != "yuv420p":
                    frame = frame.reformat(format="yuv420p")
            _put(out, (index, frame), stop)
            if index is _END:
                return
    except BaseException as err:  # noqa: BLE001 - handed to the consumer, which re-raises it
        _put(out, (_END, err), stop)


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return
        except queue.Full:
            pass


class _Decoded:
    """Iterate (frame index, resized frame) from a background decode thread; `counts` is set at the end."""

    def __init__(self, container, n_needed: int, settings: EncodeSettings) -> None:
        size, interpolation = settings.size, settings.interpolation
        self._stop = threading.Event()
        decoded: queue.Queue = queue.Queue(maxsize=4)
        self._out: queue.Queue = queue.Queue(maxsize=8)
        self._threads = [
            threading.Thread(
                target=_decode_frames,
                args=(container, n_needed, settings.decode_threads, settings.skip_loop_filter, decoded, self._stop),
                daemon=True,
            ),
            threading.Thread(
                target=_resize_frames, args=(decoded, self._out, size, interpolation, self._stop), daemon=True
            ),
        ]
        # (frames decoded, packets demuxed), once the source is exhausted.
        self.counts: tuple[int, int] | None = None

    def __iter__(self) -> Iterator[tuple[int, av.VideoFrame]]:
        for thread in self._threads:
            thread.start()
        while True:
            index, item = self._out.get()
            if index is _END:
                if isinstance(item, BaseException):
                    raise item
                self.counts = item
                return
            yield index, item

    def close(self) -> None:
        """Stop the decode threads and wait for them (before the container is closed)."""
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join()


def _open_segment(request: SegmentRequest, frame: av.VideoFrame, rate: int, first_us: int, settings) -> _OpenSegment:
    request.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(request.path)
    container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
    options = {"preset": settings.preset, "crf": str(settings.crf)}
    if settings.tune:
        options["tune"] = settings.tune
    stream = container.add_stream("libx264", rate=rate, options=options)
    stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "yuv420p"
    stream.time_base = MICROSECONDS
    stream.codec_context.time_base = MICROSECONDS
    stream.codec_context.thread_count = settings.threads
    return _OpenSegment(request=request, tmp=tmp, container=container, stream=stream, first_us=first_us)


def _encode(seg: _OpenSegment, frame: av.VideoFrame | None) -> None:
    for packet in seg.stream.encode(frame):
        seg.container.mux(packet)


def cut_segments(
    source: Path | ZipMember,
    frame_timestamps_us: np.ndarray,
    requests: Sequence[SegmentRequest],
    settings: EncodeSettings,
) -> list[WrittenSegment]:
    """Decode `source` once and write every requested segment in that pass.

    frame_timestamps_us: (F,) int64 µs, one per decoded frame in order; the video must have exactly F frames.
    A frame goes to every segment whose range holds it; each segment's presentation timestamps are the source
    timestamps minus its first frame's (µs time base). Segments are written to temp names and renamed when
    closed; on any error the temp files (and the segments of this call already renamed) are removed.
    Raises VideoError (corrupt/truncated video, frame count that disagrees with the timestamps), or
    EnvironmentFault (full or read-only output disk, no permission, no memory: never the clip's fault).
    """
    ts = np.asarray(frame_timestamps_us, dtype=np.int64)
    label = source.name if isinstance(source, ZipMember) else Path(source).name
    requests = sorted(requests, key=lambda r: (r.first_frame, r.index))
    for r in requests:
        if not 0 <= r.first_frame < r.stop_frame <= len(ts):
            raise ValueError(f"segment {r.index}: frame range [{r.first_frame}, {r.stop_frame}) outside 0..{len(ts)}")
    n_needed = max((r.stop_frame for r in requests), default=0)
    written: list[WrittenSegment] = []
    opened: list[_OpenSegment] = []
    container = open_video(source)
    frames = _Decoded(container, n_needed, settings)
    try:
        stream = container.streams.video[0]
        if stream.frames and stream.frames != len(ts):
            raise VideoError(f"{label}: video has {stream.frames} frames but the timestamps file has {len(ts)} rows")
        rate = int(round(1e6 / float(np.median(np.diff(ts))))) if len(ts) > 1 else 30
        pending = list(requests)
        for index, frame in frames:
            while pending and pending[0].first_frame == index:
                opened.append(_open_segment(pending.pop(0), frame, rate, int(ts[index]), settings))
            for seg in opened:
                if seg.request.frames and index not in seg.request.frames:
                    continue
                frame.pts = int(ts[index]) - seg.first_us
                frame.time_base = MICROSECONDS
                _encode(seg, frame)
                seg.count += 1
                seg.last_us = int(ts[index])
            for seg in [s for s in opened if s.request.stop_frame == index + 1]:
                opened.remove(seg)
                written.append(_close_segment(seg))
        decoded, packets = frames.counts
        if stream.frames and packets < stream.frames:
            raise VideoError(f"{label}: truncated or corrupt video: {packets} of {stream.frames} frames readable")
        if packets != len(ts):
            raise VideoError(f"{label}: video has {packets} frames but the timestamps file has {len(ts)} rows")
        if decoded < n_needed:
            raise VideoError(f"{label}: decoded only {decoded} of {n_needed} frames (truncated or corrupt video)")
        if opened or pending:
            raise VideoError(f"{label}: video ended before all segments were written")
    except BaseException as err:
        _discard(opened, written)
        if is_environment_fault(err):  # the output disk or the machine, never the clip's fault
            raise environment_fault(err, requests[0].path.parent if requests else label) from None
        if isinstance(err, av.FFmpegError):
            raise VideoError(f"{label}: decode failed ({err.strerror or err})") from None
        raise
    finally:
        frames.close()  # stops and joins the decode thread before the container goes away
        container.close()
    return sorted(written, key=lambda w: w.index)


def _close_segment(seg: _OpenSegment) -> WrittenSegment:
    _encode(seg, None)
    seg.container.close()
    width, height = seg.stream.width, seg.stream.height
    os.replace(seg.tmp, seg.request.path)
    return WrittenSegment(
        index=seg.request.index,
        path=seg.request.path,
        frame_count=seg.count,
        first_frame_us=seg.first_us,
        last_frame_us=seg.last_us,
        width=width,
        height=height,
        size_bytes=seg.request.path.stat().st_size,
    )


def _discard(opened: list[_OpenSegment], written: list[WrittenSegment]) -> None:
    """Remove every file of a failed cut: open temp files and segments already renamed into place."""
    for seg in opened:
        with contextlib.suppress(Exception):  # best effort while failing
            seg.container.close()
        seg.tmp.unlink(missing_ok=True)
    for w in written:
        w.path.unlink(missing_ok=True)


def decode_only(source: Path | ZipMember) -> int:
    """Decode every frame (threaded) and discard it: the physical floor for a one-pass cut. Returns frames."""
    container = open_video(source)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))
    finally:
        container.close()


__all__ = [
    "EncodeSettings",
    "SegmentRequest",
    "WrittenSegment",
    "ZipMember",
    "cut_segments",
    "decode_only",
    "locate_member",
    "open_video",
    "read_member",
]
