"""The drive key of each clip, from `metadata/data_collection.parquet` (docs/ARCHITECTURE.md, "Drive key").

The dataset's clips are 20-s cuts of longer recording drives, and it publishes no drive id: the finest grouping it
has is (platform_class, country, month, hour_of_day), so one key may hold several drives, never splits one. A
revision that adds a finer drive or session id (a column of `DRIVE_ID_COLUMNS`) is preferred, and where it also
gives the clip's start within its drive (`DRIVE_OFFSET_COLUMN`) neighbouring clips can be told apart.

pandas is imported only where the file is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.av.catalog import read_clip_table
from pipeline.core.errors import PipelineError

DATA_COLLECTION_PARQUET = "metadata/data_collection.parquet"
# The published grouping, coarsest first in the key's text; all four make the key.
GROUPING_COLUMNS = ("platform_class", "country", "month", "hour_of_day")
# A finer drive or session id, where a revision has one (none does as of revision 26.03): preferred, in this order.
DRIVE_ID_COLUMNS = ("drive_id", "session_id")
# The clip's start within its drive, µs (int), read only beside a drive id.
DRIVE_OFFSET_COLUMN = "drive_offset_us"
# `drive_offset_us` of a clip whose place in its drive is not published.
NO_OFFSET = -1


@dataclass(frozen=True)
class DriveKey:
    """One clip's drive key."""

    # "platform_class=...|country=...|month=...|hour_of_day=..." or "session_id=..."; "" = no key.
    key: str
    # Start of the clip within its drive, µs; NO_OFFSET when not published.
    offset_us: int = NO_OFFSET


def read_drive_keys(path: Path) -> dict[str, DriveKey]:
    """The drive key of every clip of `path` (a data_collection parquet, index or column `clip_id`); {} when the
    file does not exist (older downloads). A clip whose key columns hold a null gets no key.

    Raises:
        PipelineError: the file cannot be read, or has neither a drive id nor all of GROUPING_COLUMNS.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        return {}
    df = read_clip_table(path, "the data collection table")
    finer = [c for c in DRIVE_ID_COLUMNS if c in df.columns]
    columns = finer[:1] or [c for c in GROUPING_COLUMNS if c in df.columns]
    if not finer and len(columns) < len(GROUPING_COLUMNS):
        missing = ", ".join(c for c in GROUPING_COLUMNS if c not in df.columns)
        raise PipelineError(f"{path}: no drive id and missing column(s) {missing}: no drive key can be made")
    has_offset = bool(finer) and DRIVE_OFFSET_COLUMN in df.columns
    offsets = df[DRIVE_OFFSET_COLUMN].tolist() if has_offset else [None] * len(df)
    keys: dict[str, DriveKey] = {}
    rows = zip(df.index.astype(str), df[columns].itertuples(index=False), offsets, strict=True)
    for clip_id, row, offset in rows:
        if any(pd.isna(v) for v in row):
            keys[clip_id] = DriveKey("")
            continue
        key = "|".join(f"{c}={_text(v)}" for c, v in zip(columns, row, strict=True))
        keys[clip_id] = DriveKey(key, NO_OFFSET if offset is None or pd.isna(offset) else int(offset))
    return keys


def _text(value: object) -> str:
    """A key value as text: whole floats (a nullable int column read as float) without ".0"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


__all__ = [
    "DATA_COLLECTION_PARQUET",
    "DRIVE_ID_COLUMNS",
    "DRIVE_OFFSET_COLUMN",
    "GROUPING_COLUMNS",
    "NO_OFFSET",
    "DriveKey",
    "read_drive_keys",
]
