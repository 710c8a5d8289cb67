"""Settings of `pipeline download`: `DownloadConfig`, checked when it is made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import catalog
from pipeline.errors import PipelineError

DEFAULT_REPO_ID = "nvidia/PhysicalAI-Autonomous-Vehicles"


@dataclass
class DownloadConfig:
    """Options of `pipeline download` (see `--help`)."""

    # where files go, at their repo paths
    output_dir: Path = Path("physical_ai_data")
    # chunk id specs as typed: "0001", "0 1 2", "0-9", "3,5-7" (ignored with all_chunks)
    chunks: tuple[str, ...] = ()
    # every chunk listed in clip_index.parquet (of `split`, if given)
    all_chunks: bool = False
    # feature names from features.csv
    features: tuple[str, ...] = catalog.DEFAULT_FEATURES
    # train / val / test: keep only chunks holding clips of that split (their clip ids go in the manifest)
    split: str | None = None
    # branch, tag or commit of the dataset repo
    revision: str = "main"
    # dataset repo on the Hub
    repo_id: str = DEFAULT_REPO_ID
    # parallel file transfers
    max_workers: int = 8
    # re-download files even if complete
    force: bool = False
    # re-hash every local file instead of trusting the size + mtime recorded when it was verified (reads every byte)
    verify: bool = False
    # proceed without asking above the size threshold
    yes: bool = False
    # ask (or, unattended, refuse without --yes) when more than this many GB would be downloaded
    confirm_threshold_gb: float = 50.0
    # Hub base URL; None: $HF_ENDPOINT, else https://huggingface.co (read at run time, not at import)
    endpoint: str | None = None
    # access token; None: $HF_TOKEN or the `hf auth login` token. Never written to disk or logs.
    token: str | None = field(default=None, repr=False)
    # parsed from `chunks`: inclusive (first, last) ranges, checked against clip_index before they are expanded;
    # derived, not an input
    chunk_ranges: list[tuple[int, int]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.chunks = tuple(self.chunks)
        self.features = tuple(catalog.split_feature_names(self.features))
        if not self.all_chunks and not self.chunks:
            raise PipelineError("--chunk: give chunk ids (e.g. --chunk 0 or --chunk 0-9) or --all")
        if self.all_chunks and self.chunks:
            raise PipelineError("--all: cannot be combined with --chunk")
        if not self.features:
            raise PipelineError("--features: give at least one feature name")
        if self.split is not None and self.split not in catalog.SPLITS:
            raise PipelineError(f"--split {self.split!r}: expected one of {', '.join(catalog.SPLITS)}")
        if self.max_workers < 1:
            raise PipelineError(f"--max-workers {self.max_workers}: must be >= 1")
        if not self.confirm_threshold_gb > 0:
            raise PipelineError(f"--confirm-threshold-gb {self.confirm_threshold_gb}: must be > 0")
        if self.repo_id.count("/") != 1:
            raise PipelineError(f"--repo-id {self.repo_id!r}: expected namespace/name")
        if not self.revision:
            raise PipelineError("--revision: must not be empty")
        self.chunk_ranges = catalog.parse_chunk_ranges(self.chunks)

    def to_json(self) -> dict[str, Any]:
        """The resolved config for the manifest (the token is never written)."""
        out = asdict(self)
        out.pop("token")
        out["output_dir"] = str(self.output_dir)
        out["chunks"] = list(self.chunks)
        out["features"] = list(self.features)
        return out


__all__ = ["DEFAULT_REPO_ID", "DownloadConfig"]
