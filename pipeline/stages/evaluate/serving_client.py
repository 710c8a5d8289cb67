"""Ask an OpenAI-compatible chat-completions server (vLLM, SGLang, `transformers serve`) for the evaluation's answers.

Each request carries the dataset's own messages (system prompt, then the user turn with each camera's segment video as
a `video_url` part, in the conversation's order, and the prompt), greedy decoding (temperature 0; with
`--num-samples k` > 1, k sampled choices per request) and `max_tokens` sized to the answer. Requests run with bounded
concurrency through `openai.AsyncOpenAI`, whose own retries (exponential backoff, `Retry-After` honoured) cover
408/409/429/5xx, timeouts and dropped connections; a sample still failing after them is recorded as a failure, not a
crash. Every answer is appended to `predictions.jsonl` as it arrives (one flushed line, with all k answers), so an
interrupted run resumes asking only for the ids not in the file.

Frame settings per request: `pipeline.stages.evaluate.served_frames`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.contracts.run_config import VideoSettings
from pipeline.core.errors import PipelineError, first_line
from pipeline.core.progress import NullProgress, ProgressSink
from pipeline.core.secrets import redact, redacted_line
from pipeline.model.families import family_of_processor
from pipeline.stages.evaluate.config import ServerSettings
from pipeline.stages.evaluate.served_errors import is_client_error, server_message
from pipeline.stages.evaluate.served_frames import FramePlan, decoding_fields, load_run_processor, sampling_fields
from pipeline.stages.evaluate.server_responses import BadResponse, chat_answers, model_ids, read_capped

log = logging.getLogger(__name__)

TOKENS_PER_PAIR = 16
"""Answer budget per (velocity, curvature) line: the widest readable line, `100.00,-1000.00` + newline, is 15."""

PREDICTIONS_FILE = "predictions.jsonl"
"""Answers as `{"id", "text"}` lines in the output directory (what `pipeline evaluate --predictions` reads)."""

RUN_FILE = "server_run.json"
"""What the answers in `PREDICTIONS_FILE` were asked with; a resumed run must ask the same way."""


def answer_max_tokens(n_pairs: int) -> int:
    """`max_tokens` for an answer of `n_pairs` lines: `TOKENS_PER_PAIR` per line plus 16 for stray text."""
    return TOKENS_PER_PAIR * n_pairs + 16


@dataclass
class ServerRunResult:
    """What one `ask_server` call did (counts cover this call; answers include earlier runs' from the file)."""

    answers: dict[str, str]  # id -> answer text (the first of k), for every answered id of the asked rows
    samples: dict[str, list[str]] = field(default_factory=dict)  # id -> its k answers, with --num-samples k > 1
    failures: dict[str, str] = field(default_factory=dict)  # id -> last error, after the retries
    resumed: int = 0  # answers already in predictions.jsonl, not asked again
    asked: int = 0  # samples asked for in this call
    elapsed_s: float = 0.0
    served_model: str = ""

    def to_json(self) -> dict[str, Any]:
        """Counts and up to 20 failures (id -> error) for metrics.json."""
        return {
            "served_model": self.served_model,
            "resumed": self.resumed,
            "asked": self.asked,
            "failures": len(self.failures),
            "failure_examples": dict(list(self.failures.items())[:20]),
            "elapsed_s": round(self.elapsed_s, 3),
            "samples_per_s": round(self.asked / self.elapsed_s, 3) if self.elapsed_s > 0 else None,
        }


def check_server(settings: ServerSettings) -> str:
    """The served model name, from `GET /models`; one attempt, before any work.

    Raises:
        PipelineError: the server cannot be reached, refuses the key, or does not list `served_model` (one line).
    """
    import openai

    client = openai.OpenAI(base_url=settings.url, api_key=settings.api_key(), max_retries=0, timeout=30.0)
    try:
        response = client.models.with_raw_response.list()
        listed = model_ids(response.content, response.headers.get("content-type", ""))
    except BadResponse as err:
        raise PipelineError(f"--server {settings.url}: GET /models answered {err}") from None
    except openai.APIConnectionError as err:
        raise PipelineError(f"--server {settings.url}: cannot reach the server ({first_line(err)})") from None
    except openai.APIStatusError as err:
        raise PipelineError(f"--server {settings.url}: GET /models answered HTTP {err.status_code}") from None
    finally:
        client.close()
    if settings.served_model is not None:
        if settings.served_model not in listed:
            log.warning("--served-model %s is not among the served models %s", settings.served_model, listed)
        return settings.served_model
    if len(listed) != 1:
        raise PipelineError(f"--server {settings.url} serves {len(listed)} models ({listed[:5]}): give --served-model")
    return listed[0]


def request_messages(messages: list[dict[str, Any]], media: str, engine: str) -> list[dict[str, Any]]:
    """The dataset's messages as chat-completions messages: the assistant answer dropped, the video a `video_url`.

    `file` media is a `file://` URL, except for transformers serve, which opens plain absolute paths only (it
    fails on `file://`). `base64` media is a `data:video/mp4;base64,...` URL.
    """
    from pipeline.contracts.dataset_reader import clean_messages

    out = []
    for message in clean_messages(messages):
        if message["role"] == "assistant":
            continue
        content = message["content"]
        if isinstance(content, list):
            content = [_video_part(item, media, engine) if "video" in item else item for item in content]
        out.append({"role": message["role"], "content": content})
    return out


def _video_part(item: dict[str, Any], media: str, engine: str) -> dict[str, Any]:
    path = Path(item["video"]).resolve()
    if media == "base64":
        url = "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    else:
        url = str(path) if engine == "transformers" else path.as_uri()
    return {"type": "video_url", "video_url": {"url": url}}


class PredictionLog:
    """`predictions.jsonl`, read once for resuming and then appended to, one flushed line per answer."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.done: dict[str, str] = {}
        # id -> its k answers, for the lines that hold them (`"samples"`, --num-samples k > 1)
        self.samples: dict[str, list[str]] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        good_bytes, ended = 0, True
        with open(self.path, "rb") as fh:
            for raw in fh:
                try:
                    record = json.loads(raw)
                    sample_id, text = str(record["id"]), str(record["text"])
                    samples = record.get("samples")
                    if samples is not None and not (
                        isinstance(samples, list) and samples and all(isinstance(t, str) for t in samples)
                    ):
                        raise TypeError("samples is not a list of answers")
                    self.done[sample_id] = text
                    if samples is not None:
                        self.samples[sample_id] = samples
                except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, RecursionError):
                    if raw.endswith(b"\n"):
                        raise PipelineError(f"{self.path}: line {len(self.done) + 1} is not an answer") from None
                    break  # a line cut short by an interrupted run: dropped and asked again
                good_bytes += len(raw)
                ended = raw.endswith(b"\n")
        with open(self.path, "r+b") as fh:
            if good_bytes < self.path.stat().st_size:
                fh.truncate(good_bytes)
            elif good_bytes and not ended:  # a whole answer whose newline was not written: end its line
                fh.seek(good_bytes)
                fh.write(b"\n")

    def append(self, sample_id: str, text: str, samples: list[str] | None = None) -> None:
        """Append one answer line (`samples`: all k answers, `text` the first, stored as `"samples"`); a full disk
        (or any write failure) stops the run with one line."""
        record: dict[str, Any] = {"id": sample_id, "text": text, **({"samples": samples} if samples else {})}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as err:
            raise PipelineError(
                f"{self.path}: cannot append the answer of {sample_id} ({err.strerror or err})"
            ) from None
        self.done[sample_id] = text
        if samples:
            self.samples[sample_id] = list(samples)


@dataclass(frozen=True)
class RequestPlan:
    """What every request of one run carries besides its sample's messages."""

    served_model: str
    max_tokens: int
    frames: FramePlan  # per-sample frame sampling and pixel budget
    decoding: dict[str, Any] = field(default_factory=dict)  # extra decoding fields (`decoding_fields`)
    samples: int = 1  # answers per request: 1 greedy, k > 1 sampled choices (`sampling_fields`)


def ask_server(
    settings: ServerSettings,
    rows: Any,
    plan: RequestPlan,
    predictions_path: Path,
    progress: ProgressSink | None = None,
) -> ServerRunResult:
    """Answers for every row of `rows` (a dataset split with `id` and `messages`, absolute video paths).

    Rows already answered in `predictions_path` are not asked again; new answers are appended there as they arrive.
    """
    progress = progress or NullProgress()
    store = PredictionLog(predictions_path)
    ids = [str(x) for x in rows["id"]]
    pending = [i for i, sample_id in enumerate(ids) if sample_id not in store.done]
    result = ServerRunResult({}, resumed=len(ids) - len(pending), asked=len(pending), served_model=plan.served_model)
    if pending:  # a frame mismatch is refused before any request
        plan.frames.request_fields(settings.engine, sample_videos(rows[pending[0]]["messages"]))
        started = time.monotonic()
        progress.start("asking the server", len(ids))
        progress.advance(result.resumed)
        asyncio.run(_ask_all(settings, rows, pending, plan, store, result, progress))
        progress.finish()
        result.elapsed_s = time.monotonic() - started
    result.answers = {sample_id: store.done[sample_id] for sample_id in ids if sample_id in store.done}
    result.samples = {sample_id: store.samples[sample_id] for sample_id in ids if sample_id in store.samples}
    return result


def sample_videos(messages: list[dict[str, Any]]) -> list[str]:
    """The video paths of a sample's messages, in order (one per camera)."""
    from pipeline.model.collator import video_paths

    paths = video_paths(messages)
    if not paths:
        raise PipelineError("a sample has no video in its messages")
    return paths


async def _ask_all(
    settings: ServerSettings,
    rows: Any,
    pending: list[int],
    plan: RequestPlan,
    store: PredictionLog,
    result: ServerRunResult,
    progress: ProgressSink,
) -> None:
    import openai

    client = openai.AsyncOpenAI(
        base_url=settings.url, api_key=settings.api_key(), max_retries=settings.max_retries, timeout=settings.timeout_s
    )
    queue = iter(pending)
    started = time.monotonic()
    answered = 0

    async def worker() -> None:
        nonlocal answered
        for i in queue:  # one shared iterator: at most `concurrency` rows are in memory at once
            row = rows[i]
            sample_id = str(row["id"])
            try:
                texts = await _ask_one(client, settings, row["messages"], plan)
            except (openai.APIError, PipelineError, OSError) as err:
                if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
                    raise PipelineError(f"--server {settings.url}: the server refused the API key") from None
                if is_client_error(err):  # the same request would fail for every sample: stop now
                    message = redact(server_message(err), settings.api_key())
                    raise PipelineError(
                        f"--server {settings.url}: HTTP {err.status_code} for {sample_id}: {message}"
                    ) from None
                result.failures[sample_id] = reason = redacted_line(err, settings.api_key())
                log.warning("no answer for %s after %d retries: %s", sample_id, settings.max_retries, reason)
            else:
                store.append(sample_id, texts[0], texts if plan.samples > 1 else None)
                answered += 1
            progress.advance(1)
            rate = (answered + len(result.failures)) / max(time.monotonic() - started, 1e-9)
            progress.describe(f"asking the server ({len(result.failures)} failed, {rate:.2f} samples/s)")

    try:
        await asyncio.gather(*(worker() for _ in range(min(settings.concurrency, len(pending)))))
    finally:
        await client.close()


async def _ask_one(
    client: Any, settings: ServerSettings, messages: list[dict[str, Any]], plan: RequestPlan
) -> list[str]:
    """The `plan.samples` answers of one sample, in choice order.

    Raises:
        BadResponse: a response without them (not exactly `plan.samples` choices among its reasons).
    """
    frames = await asyncio.to_thread(plan.frames.request_fields, settings.engine, sample_videos(messages))
    chat = await asyncio.to_thread(request_messages, messages, settings.media, settings.engine)
    async with client.chat.completions.with_streaming_response.create(
        model=plan.served_model,
        messages=chat,
        max_tokens=plan.max_tokens,
        extra_body={**plan.decoding, **frames} or None,
        **sampling_fields(plan.samples),
    ) as response:
        body = await read_capped(response.iter_bytes())
        return chat_answers(body, response.headers.get("content-type", ""), plan.samples)


def check_resume(output_dir: Path, identity: dict[str, Any]) -> None:
    """Record `identity` (model, engine, frames, decoding) beside the answers, or check it against an earlier run's.

    Raises:
        PipelineError: `predictions.jsonl` holds answers asked otherwise (or by an unknown run): mixing them would
        score two models or two settings as one.
    """
    from pipeline.core.atomic import write_json

    record, answers = Path(output_dir) / RUN_FILE, Path(output_dir) / PREDICTIONS_FILE
    if answers.is_file() and answers.stat().st_size:
        earlier = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None
        if earlier != json.loads(json.dumps(identity)):
            changed = sorted(k for k in identity if (earlier or {}).get(k) != identity[k]) if earlier else ["all"]
            raise PipelineError(
                f"{answers}: answers of another run (differs in: {', '.join(changed)}); use a new --output-dir"
            )
        return
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    write_json(record, identity)


def whole_clip_rows(clip_ids: list[str], max_samples: int) -> list[int]:
    """Row indices of about `max_samples` rows made of whole clips spread evenly over the split (at least one clip).

    A clip's overlapping segments are either all in or all out, so a quick run scores whole clips.
    """
    import numpy as np

    clips = list(dict.fromkeys(clip_ids))
    if not clips:
        return []
    per_clip = len(clip_ids) / len(clips)
    count = min(len(clips), max(1, int(max_samples // per_clip)))
    keep = {clips[int(k)] for k in np.linspace(0, len(clips) - 1, count).round()}
    return [i for i, clip in enumerate(clip_ids) if clip in keep]


def server_answers(
    settings: ServerSettings,
    rows: Any,
    run_dir: Path,
    video_settings: VideoSettings,
    output_dir: Path,
    max_tokens: int,
    served_model: str,
    progress: ProgressSink | None = None,
    preflight: Callable[..., dict[str, Any]] | None = None,
    samples: int = 1,
) -> tuple[list[str], list[list[str]] | None, dict[str, Any]]:
    """The evaluator's seam: answer texts in row order ("" for a recorded failure), with `samples` k > 1 each row's k
    sampled answers (k times "" for a failure; else None), and a summary for metrics.json.

    `preflight` (`parity.check_parity`) asks the first samples before the run and returns its record; it asks greedy
    answers, so a sampled run skips it (and says so in the record).
    """
    processor = load_run_processor(run_dir)
    family = family_of_processor(processor)
    frames = FramePlan(processor.video_processor, video_settings, family.frame_multiple, family.template_kwargs)
    decoding = decoding_fields(settings.engine, processor, max_tokens, samples)
    plan = RequestPlan(served_model, max_tokens, frames, decoding, samples)
    identity = {
        "served_model": served_model,
        "engine": settings.engine,
        "max_tokens": max_tokens,
        "video_settings": dataclasses.asdict(video_settings),
        "decoding": plan.decoding,
    }
    check_resume(output_dir, identity | ({"num_samples": samples} if samples > 1 else {}))
    store = PredictionLog(output_dir / PREDICTIONS_FILE)
    before = len(store.done)
    if samples > 1:
        parity = {"checked": False, "reason": f"--num-samples {samples}: the check compares greedy answers' prompts"}
    elif settings.parity_check and preflight:
        parity = preflight(settings, rows, processor, plan, store)
    else:
        parity = {"checked": False}
    result = ask_server(settings, rows, plan, output_dir / PREDICTIONS_FILE, progress)
    result.resumed -= len(store.done) - before  # the pre-flight's answers are this run's
    ids = [str(sample_id) for sample_id in rows["id"]]
    texts = [result.answers.get(sample_id, "") for sample_id in ids]
    sampled = [result.samples.get(sample_id, [""] * samples) for sample_id in ids] if samples > 1 else None
    info = {
        "url": settings.url,
        "engine": settings.engine,
        "media": settings.media,
        "concurrency": settings.concurrency,
        "max_retries": settings.max_retries,
        "max_tokens": max_tokens,
        "api_key_env": settings.api_key_env,
        "max_failed_share": settings.max_failed_share,
        "parity": parity,
        "asked_in_parity_check": len(store.done) - before,
        **result.to_json(),
    }
    log.info(
        "server: %d answers (%d from an earlier run), %d failures, %.2f samples/s",
        len(result.answers),
        result.resumed,
        len(result.failures),
        info["samples_per_s"] or 0.0,
    )
    return texts, sampled, info


__all__ = [
    "PREDICTIONS_FILE",
    "PredictionLog",
    "RequestPlan",
    "ServerRunResult",
    "ServerSettings",
    "RUN_FILE",
    "answer_max_tokens",
    "ask_server",
    "check_resume",
    "check_server",
    "request_messages",
    "server_answers",
    "whole_clip_rows",
]
