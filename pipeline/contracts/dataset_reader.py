"""Reading a dataset built by `pipeline build-dataset`: its declared columns, `dataset_meta.json`, and splits with
absolute video paths and clean messages. Export, train and evaluate read the dataset only through this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import PipelineError, first_line

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa

SPLITS = ("train", "test")
META_FILE = "dataset_meta.json"


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
    if video is None:
        return None
    return str(Path(video) if Path(video).is_absolute() else root / video)


def load_split(dataset_dir: Path | str, split: str, video_root: Path | str | None = None) -> datasets.Dataset:
    """One split of a built dataset with absolute video paths and clean messages.

    `video` and the message video paths are joined to `video_root` (default: the one in dataset_meta.json), and
    rows come out with the None keys that datasets adds to content dicts removed (a format transform, so it
    applies to `ds[i]`, slices and iteration; use `clean_messages` on data read another way).

    Raises:
        PipelineError: the dataset or the split does not exist, or its files are unreadable (truncated, corrupt).
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

    # Applied per accessed batch (no pass over the split at load time, nothing held in memory).
    return ds.with_transform(lambda batch: _absolute_and_clean(root, batch))


def _absolute_and_clean(root: Path, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    if "video" in batch:
        batch["video"] = [_absolute(root, v) for v in batch["video"]]
    if "messages" in batch:
        batch["messages"] = [_absolute_messages(root, clean_messages(m)) for m in batch["messages"]]
    return batch


def split_batches(dataset_dir: Path | str, split: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """One split's rows as Arrow record batches of `columns`, in order, streamed from its shard files (listed in its
    `state.json`). The files are read, not memory-mapped, so a pass over a split of any size holds one batch. Values
    are as stored: video paths relative to `video_root`, messages with the None keys datasets adds.

    Raises:
        PipelineError: the split does not exist, its state.json is bad, a shard is unreadable or lacks a column.
    """
    import pyarrow as pa

    split_dir = Path(dataset_dir) / split
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
        try:
            with pa.OSFile(str(path)) as source, pa.ipc.open_stream(source) as reader:
                missing = [c for c in columns if c not in reader.schema.names]
                if missing:
                    raise PipelineError(f"{path}: dataset split has no column(s) {', '.join(missing)}")
                for batch in reader:
                    yield batch.select(columns)
        except (OSError, pa.ArrowException) as err:
            first = first_line(err)
            raise PipelineError(f"{path}: unreadable dataset shard ({first}); build the dataset again") from None


def split_rows(dataset_dir: Path | str, split: str, columns: list[str]) -> Iterator[dict[str, list[Any]]]:
    """`split_batches` as Python columns with what `load_split` gives a row: absolute video paths (under the
    dataset's `video_root`) and clean messages.

    Raises:
        PipelineError: as `split_batches`, or dataset_meta.json lacks `video_root`.
    """
    meta = read_meta(Path(dataset_dir))
    if not isinstance(meta.get("video_root"), str):
        raise PipelineError(f"{Path(dataset_dir) / META_FILE}: missing field 'video_root'")
    root = Path(meta["video_root"]).resolve()
    for batch in split_batches(dataset_dir, split, columns):
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
]
