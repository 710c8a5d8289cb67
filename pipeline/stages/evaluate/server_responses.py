"""What a server sent back, read defensively: one chat completion's body is its answer text or a `BadResponse`
with the reason (a failure of that sample, the run goes on), and `GET /models` is a list of names or one line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pipeline.contracts.answer import excerpt
from pipeline.core.errors import PipelineError, first_line
from pipeline.stages.evaluate.answers import valid_text

MAX_RESPONSE_BYTES = 1 << 20
"""Largest response body read (1 MiB; an answer within `max_tokens` is a few KiB): a server that ignores
`max_tokens` gives a failure for that sample, not an answer that fills the memory and the predictions file."""

_EXCERPT = 80


class BadResponse(PipelineError):
    """A response that holds no answer; the message is the reason, recorded as the sample's failure."""


async def read_capped(chunks: AsyncIterator[bytes], limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body from its chunks, up to `limit` bytes.

    Raises:
        BadResponse: the body is longer, or its reading failed.
    """
    body = bytearray()
    try:
        async for chunk in chunks:
            body += chunk
            if len(body) > limit:
                raise BadResponse(f"a response over {limit // 1024} KiB (the server ignored max_tokens?)")
    except BadResponse:
        raise
    except Exception as err:  # the transport's errors (a dropped connection, a read timeout) while reading the body
        raise BadResponse(f"the response was cut off ({first_line(err)})") from None
    return bytes(body)


def chat_answer(body: bytes, content_type: str) -> str:
    """The first choice's message content of a chat-completion body, stripped ("" for a null content).

    Raises:
        BadResponse: not JSON, an error object, no choices, no message, or content that is not text.
    """
    return _content(_choices(body, content_type)[0])


def chat_answers(body: bytes, content_type: str, n: int) -> list[str]:
    """The message contents of the `n` choices of a chat-completion body asked with the OpenAI `n`, in the order of
    their `index`, each stripped.

    Raises:
        BadResponse: as `chat_answer`, or not exactly `n` choices.
    """
    choices = _choices(body, content_type)
    if len(choices) != n:
        raise BadResponse(f"{len(choices)} choice(s) where n={n} were asked (does the server support n?)")
    return [_content(choice) for choice in sorted(choices, key=_choice_index)]


def _choice_index(choice: Any) -> int:
    index = choice.get("index") if isinstance(choice, dict) else None
    return index if isinstance(index, int) else 0


def _choices(body: bytes, content_type: str) -> list[Any]:
    data = _json(body, content_type)
    if not isinstance(data, dict):
        raise BadResponse(f"a JSON {type(data).__name__} instead of a chat completion")
    if "error" in data and not data.get("choices"):
        raise BadResponse(f"the server answered an error: {_excerpt(_error_message(data['error']))}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadResponse(f"a chat completion without choices ({_excerpt(json.dumps(data)[:1000])})")
    return choices


def _content(choice: Any) -> str:
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise BadResponse("a choice has no message")
    content = message.get("content")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise BadResponse(f"the message's content is a JSON {type(content).__name__}, not text")
    return valid_text(content).strip()


def prompt_tokens(body: bytes, content_type: str) -> tuple[list[int] | None, int | None]:
    """The prompt's token ids (vLLM's `prompt_token_ids`, asked with `return_token_ids`) and its token count (their
    number, else `usage.prompt_tokens`) of a chat-completion body that `chat_answer` read; None where absent."""
    data = _json(body, content_type)
    ids = data.get("prompt_token_ids") if isinstance(data, dict) else None
    if not (isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids)):
        ids = None
    usage = data.get("usage") if isinstance(data, dict) else None
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    count = count if isinstance(count, int) else None
    return ids, (len(ids) if ids else count)


def model_ids(body: bytes, content_type: str) -> list[str]:
    """The model names of a `GET /models` body (`{"data": [{"id": ...}, ...]}`).

    Raises:
        BadResponse: anything else.
    """
    data = _json(body, content_type)
    listed = data.get("data") if isinstance(data, dict) else None
    if not isinstance(listed, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in listed):
        raise BadResponse(f"not a model list ({_excerpt(body.decode('utf-8', 'replace'))})")
    return [valid_text(m["id"]) for m in listed]


def _json(body: bytes, content_type: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond the parser's depth
        kind = content_type.split(";")[0].strip() or "no content type"
        raise BadResponse(f"not JSON ({kind}: {_excerpt(body[:1000].decode('utf-8', 'replace'))})") from None


def _error_message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return json.dumps(error)[:1000]


def _excerpt(text: str) -> str:
    """A server's text for a failure reason: made valid, on one line, cut to `_EXCERPT` characters, quoted."""
    return repr(excerpt(" ".join(valid_text(text).split()), _EXCERPT))


__all__ = ["MAX_RESPONSE_BYTES", "BadResponse", "chat_answer", "chat_answers", "model_ids", "read_capped"]
