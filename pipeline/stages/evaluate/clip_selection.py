"""`evaluate --clips`: score only the listed clips (such as NVIDIA's evaluation list) and say, of each listed clip
the split lacks, why: in another split of the dataset, skipped when segmenting, never segmented (the segment run's
`manifest.json` beside the build's segments file tells), or not in the dataset."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.contracts.clip_list import read_clip_list
from pipeline.core.errors import PipelineError

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

# The segment run's per-clip manifest, beside its segments file: {"clips": [{"clip_id", "status", "reason"}, ...]}.
SEGMENT_MANIFEST = "manifest.json"
NOT_IN_DATASET = "not in the dataset"
# Missing clips named in the log and report.md (metrics.json names them all).
_SHOWN = 10


@dataclass
class ClipSelection:
    """What `--clips` found in the scored split."""

    file: str
    split: str
    # Distinct ids in the file.
    listed: int
    # Listed clips with samples in the split, and those samples.
    found: int
    samples: int
    # Listed clips the split lacks, in file order: clip id -> why.
    missing: dict[str, str]

    def summary(self) -> str:
        """One line for the log and the report."""
        text = (
            f"--clips {self.file}: {self.found} of {self.listed} listed clips found in split {self.split!r} "
            f"({self.samples} samples scored)"
        )
        if not self.missing:
            return text
        counts: dict[str, int] = {}
        for reason in self.missing.values():
            counts[_kind(reason)] = counts.get(_kind(reason), 0) + 1
        return text + "; missing: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())

    def missing_lines(self, limit: int | None = _SHOWN) -> list[str]:
        """'<clip id>: <why>' of the missing clips (the first `limit`; None = all)."""
        items = list(self.missing.items())[:limit]
        return [f"{clip}: {why}" for clip, why in items]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "listed": self.listed,
            "found": self.found,
            "samples": self.samples,
            "missing": [{"clip_id": c, "reason": r} for c, r in self.missing.items()],
        }


def _kind(reason: str) -> str:
    """The reason without its detail (the text before " (" or ": ")."""
    return reason.split(" (", 1)[0].split(": ", 1)[0]


def select_clips(
    path: Path, split: str, rows: datasets.Dataset, dataset: Path, meta: dict[str, Any]
) -> tuple[datasets.Dataset, ClipSelection]:
    """The rows of the listed clips, in split order, and what was found.

    Raises:
        PipelineError: the list is unreadable, or none of its clips is in the split (with the first one's reason).
    """
    listed = read_clip_list(path, "--clips")
    wanted = set(listed)
    clip_ids = list(rows["clip_id"])
    keep = [i for i, clip in enumerate(clip_ids) if clip in wanted]
    present = wanted.intersection(clip_ids)
    missing = missing_reasons([c for c in listed if c not in present], split, dataset, meta)
    selection = ClipSelection(str(path), split, len(listed), len(present), len(keep), missing)
    if not keep:
        first = next(iter(missing.items()))
        raise PipelineError(
            f"--clips {path}: none of the {len(listed)} listed clips is in split {split!r} (e.g. {first[0]}: "
            f"{first[1]})"
        )
    log.info(selection.summary())
    for line in selection.missing_lines():
        log.warning("--clips: %s", line)
    return rows.select(keep), selection


def missing_reasons(clips: list[str], split: str, dataset: Path, meta: dict[str, Any]) -> dict[str, str]:
    """Why each of `clips` (absent from `split`) is missing: another split of `dataset` holds it, the segment run
    skipped it or never cut it, or "not in the dataset" where nothing tells more."""
    from pipeline.contracts.dataset_reader import split_batches

    reasons: dict[str, str] = {}
    left = set(clips)
    others = sorted(p.name for p in dataset.iterdir() if p.name != split and (p / "dataset_info.json").is_file())
    for other in others:
        for batch in split_batches(dataset, other, ["clip_id"]):
            for clip in left.intersection(batch.column("clip_id").to_pylist()):
                reasons[clip] = f"in split {other!r}, not {split!r}"
            left -= reasons.keys()
    manifest = _segment_manifest(meta)
    for clip in left:
        row = manifest.get(clip) if manifest is not None else None
        if manifest is None:
            reasons[clip] = NOT_IN_DATASET
        elif row is None:
            reasons[clip] = f"{NOT_IN_DATASET} (never segmented: not downloaded, or not selected for segmenting)"
        elif row.get("status") == "skipped":
            reasons[clip] = f"skipped at segmenting: {row.get('reason')}"
        else:
            reasons[clip] = f"{NOT_IN_DATASET} (segmented, status {row.get('status')}, but left out of this build)"
    return {clip: reasons[clip] for clip in clips}


def _segment_manifest(meta: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The segment run's manifest rows by clip id; None when the build's segments file has no readable one."""
    segments = meta.get("segments_path")
    if not segments:
        return None
    path = Path(segments).parent / SEGMENT_MANIFEST
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["clips"]
        return {str(row["clip_id"]): row for row in rows}
    except (OSError, ValueError, KeyError, TypeError):
        return None


__all__ = ["NOT_IN_DATASET", "SEGMENT_MANIFEST", "ClipSelection", "missing_reasons", "select_clips"]
