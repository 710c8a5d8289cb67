"""Settings of `pipeline download`: `DownloadConfig`, checked when it is made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.av import catalog
from pipeline.core.errors import PipelineError
from pipeline.core.options import derive, parse_fields, setting, to_json


@dataclass(frozen=True)
class DownloadConfig:
    """Options of `pipeline download` (see `--help`)."""

    # Files keep their repo paths under it.
    output_dir: Path = setting(
        Path("physical_ai_data"), help="Where files go.", flags=("--output-dir", "--output_dir", "-o"), parse=Path
    )
    # Chunk id specs as typed: "0001", "0 1 2", "0-9", "3,5-7" (ignored with all_chunks).
    chunks: tuple[str, ...] = setting(
        (),
        help="Chunk ids: repeat the flag or give a list (space or comma separated) and ranges: "
        "--chunk 0001, --chunk '0 1 2', --chunk 0-9.",
        flags=("--chunk", "--chunks"),
        cli_default=None,
        parse=tuple,
    )
    # Of `split`, if given.
    all_chunks: bool = setting(False, help="Every chunk in clip_index.parquet.", flags=("--all",))
    features: tuple[str, ...] = setting(
        catalog.DEFAULT_FEATURES,
        help="Feature names from features.csv (repeat or comma separate).",
        flags=("--features", "--feature"),
        cli_default=None,
        parse=lambda names: tuple(catalog.split_feature_names(names)),
    )
    revision: str = setting("main", help="Branch, tag or commit of the dataset.")
    # The split's clip ids go in the manifest.
    split: str | None = setting(None, help="train, val or test: only chunks (and clips) of that split.")
    max_workers: int = setting(8, help="Parallel transfers.")
    repo_id: str = setting(catalog.REPO_ID, help="Dataset repo on the Hub.")
    # --force is the spelling of before the rename (it meant this, never "overwrite").
    redownload: bool = setting(False, help="Re-download files even if complete.", flags=("--redownload", "--force"))
    verify: bool = setting(
        False,
        help="Re-hash every local file (reads every byte) instead of trusting the size + mtime recorded when it "
        "was verified.",
    )
    yes: bool = setting(False, help="Do not ask above the size threshold.", flags=("--yes", "-y"))
    # Unattended, refuse without --yes.
    confirm_threshold_gb: float = setting(50.0, help="Ask (or need --yes) above this size.")
    # Hub base URL; None: $HF_ENDPOINT, else https://huggingface.co (read at run time, not at import)
    endpoint: str | None = None
    # access token; None: $HF_TOKEN or the `hf auth login` token. Never written to disk or logs.
    token: str | None = field(default=None, repr=False)
    # parsed from `chunks`: inclusive (first, last) ranges, checked against clip_index before they are expanded;
    # derived, not an input
    chunk_ranges: list[tuple[int, int]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        parse_fields(self)
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
        derive(self, chunk_ranges=catalog.parse_chunk_ranges(self.chunks))

    def to_json(self) -> dict[str, Any]:
        """The resolved config for the manifest (the token is never written: `repr=False`)."""
        return to_json(self)


__all__ = ["DownloadConfig"]
