"""`pipeline compare-builds A B`: the clips added, removed and moved between the sides of two dataset builds, with
both builds' revisions and split methods, so that a model trained on one build is never scored on its own training
clips from another.

A build's revision is read along its provenance: `dataset_meta.json` (the segments file) → the segment run's
`segment_config.json` beside it (its input directory) → that directory's `download_manifest.json` (revision and
commit); "unknown" where a link is missing (a synthetic repository is never downloaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.contracts.dataset_reader import read_meta, split_batches
from pipeline.core.errors import PipelineError

SIDES = ("train", "test")
# The moves that matter: a model trained on one build, scored on the other's test split.
MOVES = ("train->test", "test->train")
_SEGMENT_CONFIG = "segment_config.json"
_DOWNLOAD_MANIFEST = "download_manifest.json"


@dataclass
class Build:
    """One build: where it is, its provenance and each clip's side."""

    path: Path
    revision: str
    split_by: str
    split_method: str
    seed: int | None
    test_ratio: float | None
    # Clip id -> "train" or "test".
    sides: dict[str, str]

    def counts(self) -> dict[str, int]:
        return {side: sum(s == side for s in self.sides.values()) for side in SIDES}

    def line(self, name: str) -> str:
        counts = self.counts()
        return (
            f"{name}: {self.path}: revision {self.revision}; split by {self.split_by} (method {self.split_method}, "
            f"seed {self.seed}, test ratio {self.test_ratio}); {counts['train']} train / {counts['test']} test clips"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "revision": self.revision,
            "split_by": self.split_by,
            "split_method": self.split_method,
            "seed": self.seed,
            "test_ratio": self.test_ratio,
            "clip_counts": self.counts(),
        }


@dataclass
class Comparison:
    """The clips of B against those of A, each group sorted."""

    a: Build
    b: Build
    # Side in B -> clips only B has.
    added: dict[str, list[str]]
    # Side in A -> clips only A has.
    removed: dict[str, list[str]]
    # "train->test" (A's side -> B's side) -> clips.
    moved: dict[str, list[str]]
    # Clips on the same side in both.
    unchanged: int

    def lines(self, show: int = 10) -> list[str]:
        """The comparison as text: both builds, then each group's count and its first `show` clip ids."""
        out = [self.a.line("A"), self.b.line("B")]
        groups = [("added in B", self.added), ("removed from A", self.removed), ("moved", self.moved)]
        for title, group in groups:
            total = sum(len(v) for v in group.values())
            out.append(f"{title}: {total} clip(s) (" + ", ".join(f"{k} {len(v)}" for k, v in group.items()) + ")")
            for key, clips in group.items():
                out += [f"  {key}: {clip}" for clip in clips[:show]]
                if 0 < show < len(clips):
                    out.append(f"  {key}: ... and {len(clips) - show} more")
        out.append(f"unchanged: {self.unchanged} clip(s) on the same side in both")
        if any(self.moved.values()):
            out.append(
                "warning: moved clips are training clips of one build and test clips of the other; score a model "
                "trained on one build on the other's test split only without them (evaluate --clips)"
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a.to_json(),
            "b": self.b.to_json(),
            "added": self.added,
            "removed": self.removed,
            "moved": self.moved,
            "unchanged": self.unchanged,
        }


def read_build(path: Path) -> Build:
    """A build's provenance and each clip's side.

    Raises:
        PipelineError: not a directory, or its dataset_meta.json or a split is missing or unreadable.
    """
    path = Path(path)
    if not path.is_dir():
        raise PipelineError(f"{path}: no such dataset directory")
    meta = read_meta(path)
    sides: dict[str, str] = {}
    for side in SIDES:
        for batch in split_batches(path, side, ["clip_id"]):
            sides.update(dict.fromkeys(batch.column("clip_id").to_pylist(), side))
    return Build(
        path=path,
        revision=_revision(meta),
        split_by=str(meta.get("split_by", "unknown")),
        split_method=str(meta.get("split_method", "unknown")),
        seed=meta.get("seed"),
        test_ratio=meta.get("test_ratio"),
        sides=sides,
    )


def _revision(meta: dict[str, Any]) -> str:
    """ "<revision> (commit <12 hex>)" from the download manifest behind the build's segments; "unknown" where the
    provenance breaks off."""
    try:
        segment_config = Path(meta["segments_path"]).parent / _SEGMENT_CONFIG
        input_dir = json.loads(segment_config.read_text(encoding="utf-8"))["input_dir"]
        manifest = json.loads((Path(input_dir) / _DOWNLOAD_MANIFEST).read_text(encoding="utf-8"))
        return f"{manifest['revision']} (commit {str(manifest['commit'])[:12]})"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def compare(a: Build, b: Build) -> Comparison:
    """The clips added, removed and moved from `a` to `b`."""
    added = {side: sorted(c for c, s in b.sides.items() if s == side and c not in a.sides) for side in SIDES}
    removed = {side: sorted(c for c, s in a.sides.items() if s == side and c not in b.sides) for side in SIDES}
    both = a.sides.keys() & b.sides.keys()
    moved = {move: sorted(c for c in both if f"{a.sides[c]}->{b.sides[c]}" == move) for move in MOVES}
    unchanged = sum(a.sides[c] == b.sides[c] for c in both)
    return Comparison(a, b, added, removed, moved, unchanged)


def run(build_a: Path, build_b: Path, json_path: Path | None = None) -> Comparison:
    """Compare two builds; with `json_path`, write the comparison there too.

    Raises:
        PipelineError: a build cannot be read (one line, naming it).
    """
    from pipeline.core.atomic import write_json

    comparison = compare(read_build(build_a), read_build(build_b))
    if json_path is not None:
        write_json(Path(json_path), comparison.to_json())
    return comparison


__all__ = ["MOVES", "SIDES", "Build", "Comparison", "compare", "read_build", "run"]
