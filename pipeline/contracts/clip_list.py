"""A list of clip ids given by the user (`build-dataset --test-clips`, `evaluate --clips`): a parquet file with a
`clip_id` column (or index), such as NVIDIA's evaluation list, or a text file with one id per line (blank lines and
`#` comments are ignored)."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import PipelineError, first_line


def read_clip_list(path: Path, flag: str) -> list[str]:
    """The distinct clip ids of `path`, in file order.

    Raises:
        PipelineError: the file is missing or unreadable, a parquet file has no `clip_id`, or it lists no clip.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{flag} {path}: no such file")
    if path.suffix.lower() == ".parquet":
        ids = _parquet_ids(path, flag)
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise PipelineError(f"{flag} {path}: unreadable ({first_line(err)})") from None
        ids = [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise PipelineError(f"{flag} {path}: lists no clip id")
    return ids


def _parquet_ids(path: Path, flag: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise PipelineError(f"{flag} {path}: not a readable parquet file ({first_line(err)})") from None
    if "clip_id" not in table.column_names:
        names = ", ".join(table.column_names)
        raise PipelineError(f"{flag} {path}: no column (or index) 'clip_id' (columns: {names})")
    return [str(c) for c in table.column("clip_id").to_pylist() if c is not None]


__all__ = ["read_clip_list"]
