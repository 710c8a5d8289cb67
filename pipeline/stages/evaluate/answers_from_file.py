"""Answers read from a JSONL file of `{"id": ..., "text": ...}` lines (`--predictions`: any server's outputs, no model
loaded)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.errors import PipelineError
from pipeline.core.progress import ProgressSink
from pipeline.stages.evaluate.answers import Answers, valid_text

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)


def read_predictions(path: Path, known_ids: set[str] | None = None) -> dict[str, str]:
    """Read a JSONL file of `{"id": str, "text": str}` lines (blank lines skipped).

    Raises:
        PipelineError: unreadable line (not UTF-8, not JSON, nested too deeply), missing/non-string field,
        duplicate id, or (with `known_ids`) ids not in the split; the message names the file and line or id.
    """
    out: dict[str, str] = {}
    unknown: list[str] = []
    with open(path, "rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            record = _record(path, line_no, raw)
            if record is _BLANK:
                continue
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise PipelineError(f"--predictions {path}:{line_no}: expected an object with a string 'id'")
            if not isinstance(record.get("text"), str):
                raise PipelineError(f"--predictions {path}:{line_no}: expected a string 'text'")
            sample_id = record["id"]
            if sample_id in out:
                raise PipelineError(f"--predictions {path}:{line_no}: duplicate id {sample_id!r}")
            if known_ids is not None and sample_id not in known_ids:
                unknown.append(sample_id)
            out[sample_id] = valid_text(record["text"])  # a lone surrogate escape cannot be written to the report
    if unknown:
        raise PipelineError(f"--predictions {path}: {len(unknown)} id(s) not in the split, e.g. {unknown[0]!r}")
    if not out:
        raise PipelineError(f"--predictions {path}: no predictions in the file")
    return out


_BLANK = object()


def _record(path: Path, line_no: int, raw: bytes) -> Any:
    """One line's JSON value (`_BLANK` for a blank line).

    Raises:
        PipelineError: the line is not UTF-8, not JSON, or nested too deeply to read (one line).
    """
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PipelineError(f"--predictions {path}:{line_no}: not UTF-8 text (byte {err.start + 1})") from None
    if not line.strip():
        return _BLANK
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise PipelineError(f"--predictions {path}:{line_no}: not JSON ({err.msg})") from None
    except RecursionError:
        raise PipelineError(f"--predictions {path}:{line_no}: JSON nested too deeply to read") from None


@dataclass
class PredictionsFile:
    """The answer source of `--predictions`: the split's samples the file answers, in split order."""

    path: Path
    # Name of the split, for the log.
    split_name: str
    # Score only the first N answered samples (None = all).
    max_samples: int | None = None
    # Ids the file may answer, when the scored rows are part of the split (`evaluate --clips`: answers for the
    # other clips are left out, not errors); None = the scored rows' ids.
    known_ids: frozenset[str] | None = None

    def answers(self, split: datasets.Dataset, n_pairs: int, progress: ProgressSink) -> Answers:
        """The file's answers for the rows of `split` it covers (a partial file is scored on those, with a warning).

        Raises:
            PipelineError: as `read_predictions`, with the split's ids as the known ones.
        """
        split_ids = list(split["id"])
        answers = read_predictions(self.path, known_ids=set(split_ids) if self.known_ids is None else self.known_ids)
        keep = [i for i, sample_id in enumerate(split_ids) if sample_id in answers]
        without_prediction = len(split_ids) - len(keep)
        if without_prediction:
            log.warning(
                "%s covers %d of the %d samples of split %r; scoring those",
                self.path,
                len(keep),
                len(split_ids),
                self.split_name,
            )
        if self.max_samples is not None:
            keep = keep[: self.max_samples]
        rows = split.select(keep)
        texts = [answers[sample_id] for sample_id in rows["id"]]
        return Answers(rows, texts, without_prediction=without_prediction)


__all__ = ["PredictionsFile", "read_predictions"]
