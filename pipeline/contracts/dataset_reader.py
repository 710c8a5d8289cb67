"""Reading a dataset built by `pipeline build-dataset`: its declared columns, `dataset_meta.json`, and splits with
absolute video paths and clean messages. Export, train and evaluate read the dataset only through this module.

What it reads is checked again, with the build's own checks (`record_checks`): every `video` path (the column and
the message items) is relative, without a NUL byte or '..', and does not leave the video root through a symlink;
every label is finite and physically possible. A bad row is one `PipelineError` line naming the shard file, the
row and the problem, so a crafted shard can never make a reader copy, embed or send a file outside the root.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.contracts.segment_record import UNITS
from pipeline.core.errors import PipelineError, first_line

if TYPE_CHECKING:
    import datasets
    import numpy as np
    import pyarrow as pa

    from pipeline.contracts.video_files import VideoFiles

SPLITS = ("train", "test")
META_FILE = "dataset_meta.json"
# Label columns and their units (m/s or 1/m), checked on every read.
LABEL_COLUMNS = {name: UNITS[name] for name in ("velocity", "curvature", "history_velocity", "history_curvature")}


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence datasets' own tqdm bars (progress goes through the ProgressSink)."""
    import datasets

    were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if were_on:
            datasets.enable_progress_bars()


def features(n: int, extended: bool = False) -> datasets.Features:
    """The declared columns of the dataset (docs/ARCHITECTURE.md) for n targets per second; `extended` adds the
    columns of trajectory or several-camera builds (`cameras`, `videos`, `future_xyh`, `history_xyh`)."""
    from datasets import Features, List, Value

    content = {"type": Value("string"), "text": Value("string"), "video": Value("string")}
    seq = List(Value("float32"), length=n)
    extra = {}
    if extended:
        xyh = List(List(Value("float32"), length=3))
        extra = {"cameras": List(Value("string")), "videos": List(Value("string")), "future_xyh": xyh}
        extra["history_xyh"] = xyh
    return Features(
        {
            "id": Value("string"),
            "clip_id": Value("string"),
            "chunk": Value("int32"),
            "segment_index": Value("int32"),
            "start_us": Value("int64"),
            "end_us": Value("int64"),
            "video": Value("string"),
            "messages": List({"role": Value("string"), "content": List(content)}),
            "velocity": seq,
            "curvature": seq,
            "history_velocity": seq,
            "history_curvature": seq,
            **extra,
        }
    )


def clean_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy of `messages` without the None-valued keys that datasets adds to content dicts after a round trip."""
    cleaned = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [{k: v for k, v in item.items() if v is not None} for item in content]
        cleaned.append({**message, "content": content})
    return cleaned


def read_meta(dataset_dir: Path) -> dict[str, Any]:
    """dataset_meta.json of a built dataset.

    Raises:
        PipelineError: the file is missing or unreadable.
    """
    path = Path(dataset_dir) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"not a dataset built by `pipeline build-dataset`: {path} is missing") from None
    except json.JSONDecodeError as err:
        raise PipelineError(f"{path}: not valid JSON ({err})") from None


def _absolute(root: Path, video: str | None) -> str | None:
    return None if video is None else str(root / video)


def load_split(dataset_dir: Path | str, split: str, video_root: Path | str | None = None) -> datasets.Dataset:
    """One split of a built dataset with absolute video paths and clean messages.

    `video` and the message video paths are joined to `video_root` (default: the one in dataset_meta.json), and
    rows come out with the None keys that datasets adds to content dicts removed (a format transform, so it
    applies to `ds[i]`, slices and iteration; use `clean_messages` on data read another way).

    Every row is checked first (module docstring), in one pass over the split's shards.

    Raises:
        PipelineError: the dataset or the split does not exist, its files are unreadable (truncated, corrupt), or a
            row is bad (a video path outside the root, a label that is not finite or physically impossible).
    """
    import datasets

    dataset_dir = Path(dataset_dir)
    meta = read_meta(dataset_dir)
    if split not in SPLITS:
        raise PipelineError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    split_dir = dataset_dir / split
    if not split_dir.is_dir():
        raise PipelineError(f"split not found: {split_dir}")
    if video_root is None and not isinstance(meta.get("video_root"), str):
        raise PipelineError(f"{dataset_dir / META_FILE}: missing field 'video_root' (or pass video_root)")
    root = Path(video_root if video_root is not None else meta["video_root"]).resolve()
    try:
        ds = datasets.load_from_disk(str(split_dir))
    except (OSError, ValueError) as err:  # pyarrow: ArrowInvalid is a ValueError, a truncated file an OSError
        first = first_line(err)
        raise PipelineError(f"{split_dir}: unreadable dataset split ({first}); build the dataset again") from None
    # The checking pass streams the shards (one batch in memory); the rows it passed are the ones the transform sees.
    checked = [c for c in ("id", "video", "messages", *LABEL_COLUMNS) if c in ds.column_names]
    for _ in split_batches(dataset_dir, split, checked, root):
        pass

    # Applied per accessed batch (nothing held in memory).
    return ds.with_transform(lambda batch: _absolute_and_clean(root, batch))


def _absolute_and_clean(root: Path, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    if "video" in batch:
        batch["video"] = [_absolute(root, v) for v in batch["video"]]
    if "messages" in batch:
        batch["messages"] = [_absolute_messages(root, clean_messages(m)) for m in batch["messages"]]
    return batch


def split_batches(
    dataset_dir: Path | str,
    split: str,
    columns: list[str],
    video_root: Path | str | None = None,
    also_check: tuple[str, ...] = (),
) -> Iterator[pa.RecordBatch]:
    """One split's rows as Arrow record batches of `columns`, in order, streamed from its shard files (listed in its
    `state.json`). The files are read, not memory-mapped, so a pass over a split of any size holds one batch. Values
    are as stored: video paths relative to `video_root`, messages with the None keys datasets adds.

    Each batch is checked (module docstring) in the columns it holds: labels, and video paths (`video` and the
    message items), which with `video_root` given must also stay inside it through symlinks. The columns of
    `also_check` that a shard has are read and checked too, but not yielded.

    Raises:
        PipelineError: the split does not exist, its state.json is bad, a shard is unreadable or lacks a column, or
            a row is bad.
    """
    from pipeline.contracts.video_files import VideoFiles

    root = None if video_root is None else Path(video_root).resolve()
    files = VideoFiles()
    for path, start, batch in _shard_batches(Path(dataset_dir) / split, columns, also_check):
        _check_batch(path, start, batch, root, files)
        yield batch.select(columns)


def _shard_batches(
    split_dir: Path, columns: list[str], optional: tuple[str, ...] = (), memory_map: bool = False
) -> Iterator[tuple[Path, int, pa.RecordBatch]]:
    """(shard file, index in it of the batch's first row, batch of `columns` and of the `optional` columns the shard
    has) for every batch of the split; read, or memory-mapped with `memory_map` (for a pass that reads no values)."""
    import pyarrow as pa

    state = split_dir / "state.json"
    try:
        names = [f["filename"] for f in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
    except FileNotFoundError:
        raise PipelineError(f"split not found: {split_dir}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise PipelineError(f"{state}: not a dataset split's state ({type(err).__name__}: {err})") from None
    for name in names:
        if not isinstance(name, str) or Path(name).name != name:
            raise PipelineError(f"{state}: shard name {name!r} is not a file name in the split directory")
        path = split_dir / name
        start = 0
        try:
            source = pa.memory_map(str(path)) if memory_map else pa.OSFile(str(path))
            with source, pa.ipc.open_stream(source) as reader:
                missing = [c for c in columns if c not in reader.schema.names]
                if missing:
                    raise PipelineError(f"{path}: dataset split has no column(s) {', '.join(missing)}")
                selected = columns + [c for c in optional if c in reader.schema.names and c not in columns]
                for batch in reader:
                    yield path, start, batch.select(selected)
                    start += batch.num_rows
        except (OSError, pa.ArrowException) as err:
            first = first_line(err)
            raise PipelineError(f"{path}: unreadable dataset shard ({first}); build the dataset again") from None


def split_num_rows(dataset_dir: Path | str, split: str) -> int:
    """Rows of one split, counted from its shards' batch headers (memory-mapped: no value is read or checked).

    Raises:
        PipelineError: as `split_batches` for a missing split or an unreadable shard.
    """
    return sum(batch.num_rows for _, _, batch in _shard_batches(Path(dataset_dir) / split, [], memory_map=True))


def _check_batch(path: Path, start: int, batch: pa.RecordBatch, root: Path | None, files: VideoFiles) -> None:
    """Refuse the batch's first bad row (`start`: its index in the shard at `path`); see the module docstring."""
    import pyarrow.compute as pc

    from pipeline.contracts.record_checks import first_bad_path, first_bad_target, first_bad_video

    def bad_video(videos: pa.Array) -> tuple[int, str] | None:
        return first_bad_path(videos) if root is None else first_bad_video(videos, root, files)

    problems = []
    names = batch.schema.names
    if "video" in names and (bad := bad_video(batch.column("video"))):
        problems.append((bad[0], f"video {bad[1]}"))
    if "messages" in names:
        videos, rows = _message_videos(batch.column("messages"))
        if bad := bad_video(videos):
            problems.append((int(rows[bad[0]]), f"message video {bad[1]}"))
    for name in (n for n in LABEL_COLUMNS if n in names):
        column = batch.column(name)
        values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(float)
        if bad := first_bad_target(values, pc.list_parent_indices(column).to_numpy(), LABEL_COLUMNS[name]):
            problems.append((bad[0], f"field {name!r} {bad[1]}"))
    if problems:
        row, problem = min(problems)
        rid = batch.column("id")[row].as_py() if "id" in names else None
        where = f"row {start + row}" + (f" (id {rid!r})" if isinstance(rid, str) else "")
        raise PipelineError(f"{path}: {where}: {problem}")


def _message_videos(messages: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The video paths of a messages column's content items, and the row of each."""
    import pyarrow.compute as pc

    turns = pc.list_flatten(messages)
    content = pc.struct_field(turns, "content")
    items = pc.list_flatten(content)
    if "video" not in [f.name for f in items.type]:
        return items.slice(0, 0), np.zeros(0, dtype=np.int64)
    videos = pc.struct_field(items, "video")
    item_rows = pc.list_parent_indices(messages).to_numpy()[pc.list_parent_indices(content).to_numpy()]
    valid = pc.is_valid(videos)
    return videos.filter(valid), item_rows[valid.to_numpy(zero_copy_only=False)]


def split_rows(dataset_dir: Path | str, split: str, columns: list[str]) -> Iterator[dict[str, list[Any]]]:
    """`split_batches` as Python columns with what `load_split` gives a row: absolute video paths (under the
    dataset's `video_root`, which they are checked to stay inside) and clean messages. The split's labels are
    checked too, as `load_split` checks them.

    Raises:
        PipelineError: as `split_batches`, or dataset_meta.json lacks `video_root`.
    """
    meta = read_meta(Path(dataset_dir))
    if not isinstance(meta.get("video_root"), str):
        raise PipelineError(f"{Path(dataset_dir) / META_FILE}: missing field 'video_root'")
    root = Path(meta["video_root"]).resolve()
    for batch in split_batches(dataset_dir, split, columns, root, also_check=tuple(LABEL_COLUMNS)):
        yield _absolute_and_clean(root, batch.to_pydict())


def _absolute_messages(root: Path, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for message in messages:
        for item in message["content"]:
            if "video" in item:
                item["video"] = _absolute(root, item["video"])
    return messages


__all__ = [
    "META_FILE",
    "SPLITS",
    "clean_messages",
    "features",
    "load_split",
    "quiet_datasets",
    "read_meta",
    "split_batches",
    "split_num_rows",
    "split_rows",
]
