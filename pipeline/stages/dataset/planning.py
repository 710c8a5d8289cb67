"""The build's split plan, made before the clips are checked: the method (`--split-by auto` resolved), the clips held
out by name (`--test-clips`) and their drives, from one survey of the segments file (`leakage.survey`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.contracts.clip_list import read_clip_list
from pipeline.contracts.segments_reader import SegmentsFile
from pipeline.core.errors import PipelineError
from pipeline.stages.dataset.config import DatasetConfig
from pipeline.stages.dataset.leakage import ClipSurvey, survey
from pipeline.stages.dataset.rows import SplitRule
from pipeline.stages.dataset.split import OFFICIAL_SPLIT_MAP, clip_is_test, drive_is_test, held_out

log = logging.getLogger(__name__)

# Missing --test-clips ids named in dataset_meta.json (the count is always complete).
_MISSING_SHOWN = 20


@dataclass
class SplitPlan:
    """How the build splits, and why."""

    rule: SplitRule
    survey: ClipSurvey
    # Why this method ("given", or why auto chose it).
    reason: str
    # --test-clips: file, listed, found, held_drives, missing (first ids); None without the option.
    test_clips: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def plan_split(config: DatasetConfig, source: SegmentsFile) -> SplitPlan:
    """The split plan of `config` over `source`.

    Raises:
        PipelineError: --split-by drive while some clip has no drive key, or an unreadable --test-clips file.
    """
    clips = survey(source)
    split_by, reason = config.split_by, "given"
    if split_by == "auto":
        split_by = "drive" if clips.all_have_drive else "clip"
        reason = (
            "default: every record has a drive key"
            if split_by == "drive"
            else "default: some record has no drive key (segments cut before drive keys: run `pipeline segment` again)"
        )
    elif split_by == "drive" and not clips.all_have_drive:
        n = int((clips.drives == "").sum())
        raise PipelineError(
            f"--split-by drive: {n} of {len(clips.drives)} clips of {config.segments_path} have no drive key "
            "(cut before drive keys, or no metadata/data_collection.parquet: run `pipeline segment` again)"
        )
    rule = SplitRule(split_by, config.seed, config.test_ratio)
    plan = SplitPlan(rule, clips, reason)
    log.info("split by %s (%s)", split_by, reason)
    if config.test_clips is not None:
        _hold_out(plan, config)
    return plan


def _hold_out(plan: SplitPlan, config: DatasetConfig) -> None:
    listed = read_clip_list(config.test_clips, "--test-clips")
    clips = plan.survey
    present = set(clips.clip_ids.tolist())
    found = [c for c in listed if c in present]
    missing = [c for c in listed if c not in present]
    drives: frozenset[str] = frozenset()
    if not config.allow_drive_neighbours:
        named = np.isin(clips.clip_ids, found)
        drives = frozenset(clips.drives[named].tolist()) - {""}
    plan.rule = SplitRule(
        plan.rule.split_by, plan.rule.seed, plan.rule.test_ratio, test_clips=frozenset(found), held_drives=drives
    )
    plan.test_clips = {
        "file": str(config.test_clips),
        "listed": len(listed),
        "found": len(found),
        "held_drives": len(drives),
        "drive_neighbours_allowed": config.allow_drive_neighbours,
        "missing": missing[:_MISSING_SHOWN],
    }
    plan.notes.append(
        f"--test-clips: {len(found)} of {len(listed)} listed clips are in the segments file and go to test"
        + ("" if config.allow_drive_neighbours else f", with every clip of their {len(drives)} drive(s)")
    )
    log.info(plan.notes[-1])
    if missing:
        log.warning("--test-clips: %d listed clip(s) not in the segments file, e.g. %s", len(missing), missing[0])


def survey_sides(rule: SplitRule, clips: ClipSurvey) -> np.ndarray:
    """(clips,) bool: each surveyed clip's side under `rule` (what `rows.row_is_test` gives its records)."""
    if rule.split_by == "clip":
        is_test = clip_is_test(rule.seed, clips.clip_ids.tolist(), rule.test_ratio)
    elif rule.split_by == "drive":
        is_test = drive_is_test(rule.seed, clips.drives.tolist(), rule.test_ratio)
    else:
        is_test = np.array([OFFICIAL_SPLIT_MAP.get(s) == "test" for s in clips.splits.tolist()], dtype=bool)
    return is_test | held_out(clips.clip_ids, clips.drives, rule.test_clips, rule.held_drives)


__all__ = ["SplitPlan", "plan_split", "survey_sides"]
