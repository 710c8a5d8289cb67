"""Where each file of the PhysicalAI-AV dataset lives, from the repository's own `features.csv` and
`clip_index.parquet` (never hard-coded): feature → chunk file path, zip member names, chunk ids and splits.

No network here: the download stage fetches the two index files and the segment stage reads a downloaded directory.
pandas is imported only where `clip_index.parquet` is read, so that the CLI's configs can use the feature and chunk
helpers without loading it.
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import PipelineError

if TYPE_CHECKING:
    import pandas as pd

FEATURES_CSV = "features.csv"
CLIP_INDEX_PARQUET = "clip_index.parquet"
# Newer revisions carry an official split file that overrides clip_index's `split` column.
SPLITS_PARQUET = "splits/default.parquet"
SPLITS = ("train", "val", "test")
REPO_ID = "nvidia/PhysicalAI-Autonomous-Vehicles"
"""The dataset's repository on the Hugging Face Hub."""
DEFAULT_CAMERA = "camera_front_wide_120fov"
"""The camera the motion dataset is cut from."""
DEFAULT_FEATURES = ("egomotion", DEFAULT_CAMERA)

_FEATURES_COLUMNS = ("feature", "directory", "chunk_path", "clip_files_in_zip")
_CHUNK_TOKEN = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class Feature:
    """One row of `features.csv`."""

    # feature name, e.g. "camera_front_wide_120fov" or "egomotion"
    name: str
    # top-level directory: "labels", "calibration", "camera", "lidar" or "radar"
    directory: str
    # repo path template of the per-chunk file, with a `{chunk_id:04d}` field
    chunk_path: str
    # alias -> zip member template with a `{clip_id}` field; empty for per-chunk files that are not zips
    clip_files_in_zip: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise PipelineError("features.csv: a row has an empty feature name")
        if "{chunk_id" not in self.chunk_path:
            raise PipelineError(
                f"features.csv: feature {self.name!r} has chunk_path {self.chunk_path!r} without {{chunk_id}}"
            )
        for alias, template in self.clip_files_in_zip.items():
            if "{clip_id}" not in template:
                raise PipelineError(
                    f"features.csv: feature {self.name!r} member {alias!r} template {template!r} lacks {{clip_id}}"
                )

    @property
    def is_zip(self) -> bool:
        """Whether the chunk file is a zip of per-clip members (else a per-chunk file such as a parquet)."""
        return bool(self.clip_files_in_zip)


def parse_features_csv(text: str, source: str = FEATURES_CSV) -> dict[str, Feature]:
    """Parse the text of `features.csv` into `{name: Feature}` in file order.

    Raises `PipelineError` naming `source` if a column is missing or a row is malformed.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _FEATURES_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise PipelineError(f"{source}: missing column(s) {', '.join(missing)}")
    features: dict[str, Feature] = {}
    for line, row in enumerate(reader, start=2):
        raw = (row["clip_files_in_zip"] or "").strip()
        try:
            members = json.loads(raw) if raw else {}
        except json.JSONDecodeError as err:
            raise PipelineError(f"{source} line {line}: clip_files_in_zip is not JSON ({err.msg})") from None
        if not isinstance(members, dict):
            raise PipelineError(f"{source} line {line}: clip_files_in_zip must be a JSON object")
        feature = Feature(
            name=row["feature"].strip(),
            directory=row["directory"].strip(),
            chunk_path=row["chunk_path"].strip(),
            clip_files_in_zip={str(k): str(v) for k, v in members.items()},
        )
        if feature.name in features:
            raise PipelineError(f"{source} line {line}: duplicate feature {feature.name!r}")
        features[feature.name] = feature
    if not features:
        raise PipelineError(f"{source}: no features listed")
    return features


def read_features(path: Path) -> dict[str, Feature]:
    """Read `features.csv` from disk; see `parse_features_csv`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PipelineError(f"{path}: cannot read features.csv ({err.strerror})") from None
    return parse_features_csv(text, source=str(path))


def chunk_file(feature: Feature, chunk_id: int) -> str:
    """Repo path of `feature`'s file for chunk `chunk_id`, e.g. `labels/egomotion/egomotion.chunk_0003.zip`."""
    return feature.chunk_path.format(chunk_id=int(chunk_id))


def member_name(feature: Feature, alias: str, clip_id: str) -> str:
    """Zip member name of `clip_id` for `alias` (e.g. "video", "frame_timestamps", "egomotion") of `feature`.

    Raises `PipelineError` listing the aliases `feature` has if `alias` is not one of them.
    """
    try:
        template = feature.clip_files_in_zip[alias]
    except KeyError:
        valid = ", ".join(feature.clip_files_in_zip) or "none (not a zip feature)"
        raise PipelineError(f"feature {feature.name!r} has no member {alias!r} (members: {valid})") from None
    return template.format(clip_id=clip_id)


def validate_feature_names(names: Iterable[str], features: dict[str, Feature], flag: str = "--features") -> list[str]:
    """Return `names` de-duplicated in order, or raise `PipelineError` listing the valid names."""
    out: list[str] = []
    for name in names:
        if name not in features:
            raise PipelineError(f"{flag}: unknown feature {name!r} (valid: {', '.join(features)})")
        if name not in out:
            out.append(name)
    if not out:
        raise PipelineError(f"{flag}: no feature given (valid: {', '.join(features)})")
    return out


def split_feature_names(specs: Iterable[str]) -> list[str]:
    """Split repeated/space/comma separated feature names into a flat list."""
    return [tok for spec in specs for tok in re.split(r"[\s,]+", spec.strip()) if tok]


# ---------------------------------------------------------------------------------------------------------------
# chunk ids


# More chunk ids than any revision of the dataset has (3,146 chunks): a range wider than this is a typo, refused
# before it is expanded into a list.
MAX_CHUNK_IDS = 100_000


def parse_chunk_ranges(specs: Iterable[str], flag: str = "--chunk") -> list[tuple[int, int]]:
    """Parse chunk id specs into inclusive (first, last) ranges, in the order given, without expanding them.

    Each spec may hold several tokens separated by spaces or commas; a token is an id ("0001", "7") or an
    inclusive range ("0-9"). Raises `PipelineError` naming `flag` for a malformed token, a reversed range, or specs
    that hold no token at all (`--chunk ''`).
    """
    specs = list(specs)
    ranges: list[tuple[int, int]] = []
    for spec in specs:
        for token in re.split(r"[\s,]+", str(spec).strip()):
            if not token:
                continue
            match = _CHUNK_TOKEN.match(token)
            if match is None:
                raise PipelineError(f"{flag} {token!r}: expected a chunk id like 0001 or a range like 0-9")
            lo = int(match.group(1))
            hi = int(match.group(2)) if match.group(2) is not None else lo
            if hi < lo:
                raise PipelineError(f"{flag} {token!r}: range end is before its start")
            ranges.append((lo, hi))
    if specs and not ranges:
        raise PipelineError(f"{flag} {' '.join(map(str, specs))!r}: no chunk id given (e.g. {flag} 0 or {flag} 0-9)")
    return ranges


def parse_chunk_ids(specs: Iterable[str], flag: str = "--chunk") -> list[int]:
    """Parse chunk id specs (see `parse_chunk_ranges`) into sorted unique ints.

    Refuses (before expanding) ranges that together span more than `MAX_CHUNK_IDS` ids. Where the valid chunk ids
    are known, prefer `select_chunks`, which checks the ranges against them without expanding at all.
    """
    ranges = parse_chunk_ranges(specs, flag)
    span = sum(hi - lo + 1 for lo, hi in ranges)
    if span > MAX_CHUNK_IDS:
        raise PipelineError(
            f"{flag}: the ranges span {span:,} chunk ids, more than any revision of the dataset has "
            f"({MAX_CHUNK_IDS:,} at most)"
        )
    return sorted({i for lo, hi in ranges for i in range(lo, hi + 1)})


def select_chunks(ranges: Sequence[tuple[int, int]], available: Iterable[int], flag: str = "--chunk") -> list[int]:
    """The ids of `available` inside `ranges` (sorted), after checking every id of every range is available.

    Never expands a range: time and memory grow with `available`, not with the ranges' width, so `0-1000000000000`
    is refused at once. Raises `PipelineError` naming the unknown ids (as ranges) and the valid ones.
    """
    valid = sorted(set(int(a) for a in available))
    unknown: list[tuple[int, int]] = []
    chosen: set[int] = set()
    for lo, hi in ranges:
        first, stop = bisect.bisect_left(valid, lo), bisect.bisect_right(valid, hi)
        inside = valid[first:stop]
        chosen.update(inside)
        edges = [lo - 1, *inside, hi + 1]
        unknown += [(a + 1, b - 1) for a, b in itertools.pairwise(edges) if b - a > 1]
    if unknown:
        merged = _merge(unknown)
        shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in merged[:20])
        shown += " ..." if len(merged) > 20 else ""
        raise PipelineError(
            f"{flag}: unknown chunk id(s) {shown} (valid chunk ids in clip_index.parquet: {format_ranges(valid)})"
        )
    return sorted(chosen)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def format_ranges(values: Iterable[int]) -> str:
    """Compress ints into "0-3, 5, 7-9" form (sorted, unique)."""
    vals = sorted(set(int(v) for v in values))
    parts: list[str] = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        parts.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ", ".join(parts)


def validate_chunk_ids(ids: Sequence[int], available: Iterable[int], flag: str = "--chunk") -> list[int]:
    """Return `ids` if all are in `available`, else raise `PipelineError` naming the bad ids and the valid range."""
    valid = set(int(a) for a in available)
    unknown = [i for i in ids if i not in valid]
    if unknown:
        shown = format_ranges(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
        raise PipelineError(
            f"{flag}: unknown chunk id(s) {shown} (valid chunk ids in clip_index.parquet: {format_ranges(valid)})"
        )
    return list(ids)


# ---------------------------------------------------------------------------------------------------------------
# clip index


@dataclass(frozen=True)
class ClipIndex:
    """`clip_index.parquet` as a typed table: one row per clip.

    `table` has index `clip_id` (str) and columns `chunk` (int64), `split` (str: train/val/test) and
    `clip_is_valid` (bool).
    """

    # the table described above, sorted by (chunk, clip_id)
    table: pd.DataFrame
    # the file it was read from (for error messages)
    source: str = CLIP_INDEX_PARQUET

    def __post_init__(self) -> None:
        for col in ("chunk", "split", "clip_is_valid"):
            if col not in self.table.columns:
                raise PipelineError(f"{self.source}: missing column {col!r}")

    def __len__(self) -> int:
        return len(self.table)

    @property
    def chunks(self) -> list[int]:
        """Sorted chunk ids present in the index."""
        return sorted(int(c) for c in self.table["chunk"].unique())

    def chunks_of_split(self, split: str) -> list[int]:
        """Sorted chunk ids holding at least one clip of `split`."""
        sel = self.table["split"] == split
        return sorted(int(c) for c in self.table.loc[sel, "chunk"].unique())

    def clips(self, chunk: int | None = None, split: str | None = None, valid_only: bool = False) -> list[str]:
        """Clip ids, sorted, optionally restricted to one chunk, one split and/or valid clips."""
        table = self.table
        if chunk is not None:
            table = table[table["chunk"] == int(chunk)]
        if split is not None:
            table = table[table["split"] == split]
        if valid_only:
            table = table[table["clip_is_valid"]]
        return sorted(str(c) for c in table.index)

    def chunk_of(self, clip_id: str) -> int:
        return int(self.table.at[clip_id, "chunk"])

    def split_of(self, clip_id: str) -> str:
        return str(self.table.at[clip_id, "split"])


def read_clip_table(path: Path, what: str, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A parquet table indexed by `clip_id` (stored as the index or as a column), checked for `columns`."""
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise PipelineError(f"{path}: cannot read {what} ({err})") from None
    if df.index.name != "clip_id" and "clip_id" in df.columns:
        df = df.set_index("clip_id")
    for col in columns:
        if col not in df.columns:
            raise PipelineError(f"{path}: missing column {col!r}")
    return df


def read_clip_index(path: Path, splits_path: Path | None = None) -> ClipIndex:
    """Read `clip_index.parquet` (and, if given and present, `splits/default.parquet` whose `split` column wins).

    Raises `PipelineError` naming the file if it cannot be read or lacks a column.
    """
    import pandas as pd

    path = Path(path)
    df = read_clip_table(path, "clip index", ("chunk", "split", "clip_is_valid"))
    if splits_path is not None and Path(splits_path).is_file():
        splits = read_clip_table(Path(splits_path), "split file", ("split",))
        df = df.assign(split=splits["split"].reindex(df.index).fillna(df["split"]))
    table = pd.DataFrame(
        {
            "chunk": df["chunk"].astype("int64").to_numpy(),
            "split": df["split"].astype(str).to_numpy(),
            "clip_is_valid": df["clip_is_valid"].astype(bool).to_numpy(),
        },
        index=pd.Index(df.index.astype(str), name="clip_id"),
    )
    table = table.sort_index(kind="stable").sort_values("chunk", kind="stable")
    return ClipIndex(table=table, source=str(path))


# ---------------------------------------------------------------------------------------------------------------
# a downloaded directory


@dataclass(frozen=True)
class DatasetDir:
    """A directory laid out like the Hub repo (what `pipeline download` writes): index files and chunk files."""

    # the directory
    root: Path
    # features.csv of that directory
    features: dict[str, Feature]
    # clip_index.parquet (with splits/default.parquet applied when present)
    clip_index: ClipIndex

    def feature(self, name: str) -> Feature:
        validate_feature_names([name], self.features, flag="feature")
        return self.features[name]

    def chunk_path(self, feature_name: str, chunk_id: int) -> Path:
        """Local path of a feature's chunk file (it may not exist)."""
        return self.root / chunk_file(self.feature(feature_name), chunk_id)

    def downloaded_chunks(self, feature_name: str) -> list[int]:
        """Chunk ids of the index whose file for `feature_name` exists locally."""
        return [c for c in self.clip_index.chunks if self.chunk_path(feature_name, c).is_file()]


def open_dataset_dir(root: Path) -> DatasetDir:
    """Open a downloaded directory; raises `PipelineError` if its `features.csv` or `clip_index.parquet` is missing."""
    root = Path(root)
    for name in (FEATURES_CSV, CLIP_INDEX_PARQUET):
        if not (root / name).is_file():
            raise PipelineError(f"{root}: no {name} (is this a directory written by `pipeline download`?)")
    return DatasetDir(
        root=root,
        features=read_features(root / FEATURES_CSV),
        clip_index=read_clip_index(root / CLIP_INDEX_PARQUET, root / SPLITS_PARQUET),
    )


__all__ = [
    "CLIP_INDEX_PARQUET",
    "DEFAULT_FEATURES",
    "FEATURES_CSV",
    "SPLITS",
    "SPLITS_PARQUET",
    "ClipIndex",
    "DatasetDir",
    "Feature",
    "chunk_file",
    "format_ranges",
    "member_name",
    "open_dataset_dir",
    "parse_chunk_ids",
    "parse_chunk_ranges",
    "select_chunks",
    "parse_features_csv",
    "read_clip_index",
    "read_features",
    "split_feature_names",
    "validate_chunk_ids",
    "validate_feature_names",
]
