"""The parity pre-flight of a served run: the server's prompt for the first samples against training's.

A server that renders another prompt than training (the outer video wrapper, another frame count or pixel budget,
another chat template or its variables) answers another question, and the answers quietly score worse. Before the
run, the first `PARITY_SAMPLES` unanswered samples are asked (their answers are kept: no sample is asked twice) and
their prompts compared with the ones `SampleEncoder` builds for them (what `pipeline evaluate --model` generates
from):

- vLLM returns the prompt's token ids (`return_token_ids`): the ids are compared, since Qwen3-VL's `<t seconds>`
  tokens can differ at the same count;
- elsewhere `usage.prompt_tokens` is compared with training's count;
- a server that reports neither is noted (a warning and `metrics.json`), and the run goes on.

A several-camera sample is asked as the run asks it: one `video_url` part per camera, in order, under one frame
plan; its prompt holds every camera's frames, so the comparison covers them all.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.secrets import redact, redacted_line
from pipeline.model.collator import SampleEncoder, video_token_id
from pipeline.model.families import family_of_processor
from pipeline.stages.evaluate.served_errors import is_client_error, server_message
from pipeline.stages.evaluate.server_responses import BadResponse, chat_answer, prompt_tokens
from pipeline.stages.evaluate.serving_client import PredictionLog, RequestPlan, ServerSettings, request_messages

log = logging.getLogger(__name__)

PARITY_SAMPLES = 2
"""Samples asked in the pre-flight (each decoded locally too)."""


def check_parity(
    settings: ServerSettings, rows: Any, processor: Any, plan: RequestPlan, store: PredictionLog
) -> dict[str, Any]:
    """Ask the first unanswered samples, keep their answers in `store`, and compare the server's prompts with
    training's; the result for metrics.json.

    Raises:
        PipelineError: a prompt differs (one line: both counts and the likely cause), or a request got a client error.
    """
    import openai

    family = family_of_processor(processor)
    encoder = SampleEncoder(processor, plan.frames.settings, family)
    client = openai.OpenAI(
        base_url=settings.url, api_key=settings.api_key(), max_retries=settings.max_retries, timeout=settings.timeout_s
    )
    pending = [i for i, sample_id in enumerate(rows["id"]) if str(sample_id) not in store.done][:PARITY_SAMPLES]
    if not pending:
        return {"checked": False, "reason": "every sample was answered by an earlier run"}
    compared: list[dict[str, Any]] = []
    try:
        for i in pending:
            row = rows[i]
            trained = encoder.encode(row["messages"], for_generation=True)["input_ids"][0].tolist()
            served = _served_prompt(client, settings, row["messages"], plan)
            if served is None:  # a 5xx after the retries: the run asks (and records) it again
                return {"checked": bool(compared), "samples": compared, "reason": "a request failed"}
            answer, served_ids, served_count = served
            if served_count is None:
                store.append(str(row["id"]), answer)
                log.warning("parity check: the server reports no prompt usage; served prompts were not compared")
                return {"checked": False, "reason": "the server reports no usage"}
            entry = {"id": str(row["id"]), "training_tokens": len(trained), "served_tokens": served_count}
            entry["compared"] = "token ids" if served_ids is not None else "token count"
            compared.append(entry)
            if served_count != len(trained) or (served_ids is not None and served_ids != trained):
                raise PipelineError(_mismatch(entry, trained, served_ids, processor, family.collapse_video_wrapper))
            store.append(str(row["id"]), answer)
    finally:
        client.close()
    log.info("parity check: %d served prompt(s) identical to training's", len(compared))
    return {"checked": True, "samples": compared}


def _served_prompt(
    client: Any, settings: ServerSettings, messages: list[dict[str, Any]], plan: RequestPlan
) -> tuple[str, list[int] | None, int | None] | None:
    """(answer, prompt token ids or None, prompt token count or None) of one request as the run sends it; None
    when it failed after the retries or its response holds no answer (the run asks it again and records why).

    Raises:
        PipelineError: a client error (`served_errors.is_client_error`) or a refused key (one line).
    """
    import openai

    from pipeline.stages.evaluate.serving_client import sample_videos

    extra = {**plan.decoding, **plan.frames.request_fields(settings.engine, sample_videos(messages))}
    if settings.engine == "vllm":
        extra["return_token_ids"] = True
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=plan.served_model,
            messages=request_messages(messages, settings.media, settings.engine),
            temperature=0.0,
            max_tokens=plan.max_tokens,
            extra_body=extra,
        )
        body, content_type = raw.http_response.content, raw.http_response.headers.get("content-type", "")
        answer = chat_answer(body, content_type)
    except openai.APIError as err:
        if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
            raise PipelineError(f"--server {settings.url}: the server refused the API key") from None
        if is_client_error(err):
            message = redact(server_message(err), settings.api_key())
            raise PipelineError(f"--server {settings.url}: HTTP {err.status_code}: {message}") from None
        log.warning("parity check: a request failed after the retries (%s)", redacted_line(err, settings.api_key()))
        return None
    except BadResponse as err:
        log.warning("parity check: no answer in the server's response (%s)", redacted_line(err, settings.api_key()))
        return None
    ids, count = prompt_tokens(body, content_type)
    return answer, ids, count


def _mismatch(
    entry: dict[str, Any], trained: list[int], served: list[int] | None, processor: Any, collapsed: bool
) -> str:
    """One line: both counts and the likely cause."""
    n_train, n_served = entry["training_tokens"], entry["served_tokens"]
    if collapsed and n_served - n_train == 2:
        cause = (
            "the outer <|vision_start|>/<|vision_end|> pair around the frames: serve with the run's "
            "serving_template.jinja (pipeline serve-model)"
        )
    elif served is not None and served.count(video_token_id(processor)) != trained.count(video_token_id(processor)):
        cause = (
            f"another frame count or pixel budget ({served.count(video_token_id(processor))} video tokens served, "
            f"{trained.count(video_token_id(processor))} in training)"
        )
    elif n_served == n_train:
        cause = "other frame timestamps or another template at the same length"
    else:
        cause = "another chat template or template variables (e.g. enable_thinking)"
    return (
        f"parity check: the server's prompt for {entry['id']} has {n_served} tokens, training's {n_train}: likely "
        f"{cause}; --no-parity-check skips this check"
    )


__all__ = ["PARITY_SAMPLES", "check_parity"]
