"""`Answers`: what an answer source gives the scoring, whichever it is: a predictions file (`answers_from_file`), the
model generating in-process (`answers_from_model`) or an OpenAI-compatible server (`answers_from_server`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.core.progress import ProgressSink

if TYPE_CHECKING:
    import datasets


@dataclass
class Answers:
    """One answer text per row to score, and what the report records about where they came from."""

    # The split's rows that are scored, in order (a source may score a subset: --max-samples, a partial file).
    rows: datasets.Dataset
    # One answer per row; "" where none came (it counts as a parse failure).
    texts: list[str]
    # Samples of the split the source had no answer for (not scored).
    without_prediction: int = 0
    # The generation settings of an in-process model (`pipeline.model.inference.generation_record`).
    generation: dict[str, Any] | None = None
    # A server's summary (`serving_client.server_answers`).
    server: dict[str, Any] | None = None
    # With --num-samples k > 1: k answers per row (`texts` holds the first of each).
    samples: list[list[str]] | None = None


def valid_text(text: str) -> str:
    """`text` with each lone surrogate (a `\\ud800` escape in JSON reads as one) replaced by U+FFFD, so that it
    can be written as UTF-8 (report.md, report.html, predictions.jsonl)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


class AnswerSource(Protocol):
    """Where the answers come from; made (and a server checked) before any work, asked once the split is read."""

    def answers(self, split: datasets.Dataset, n_pairs: int, progress: ProgressSink) -> Answers:
        """Answers for the rows of `split` it scores; `n_pairs` = (velocity, curvature) lines in a full answer."""
        ...


__all__ = ["AnswerSource", "Answers", "valid_text"]
