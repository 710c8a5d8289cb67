"""Which server failures stop a served run: client errors at once, too many failed samples at the end."""

from __future__ import annotations

from typing import Any

from pipeline.core.errors import first_line


def is_client_error(err: Exception) -> bool:
    """An HTTP 4xx that no retry mends (not 408, 409 or 429, which the client retries)."""
    import openai

    status = getattr(err, "status_code", None) if isinstance(err, openai.APIStatusError) else None
    return status is not None and 400 <= status < 500 and status not in (408, 409, 429)


def server_message(err: Any) -> str:
    """The error message in a server's JSON error body (OpenAI's `{"error": {"message"}}`, vLLM's `{"message"}`),
    as one line; else the client's own."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return first_line(str(message))
    return first_line(err)


def failed_share_verdict(info: dict[str, Any]) -> str | None:
    """One line saying the served run failed (`info`: `server_answers`' summary), or None when few enough failed."""
    asked = (info.get("asked") or 0) + (info.get("asked_in_parity_check") or 0)
    failed, limit = info.get("failures") or 0, info.get("max_failed_share", 1.0)
    if not asked or failed / asked <= limit:
        return None
    return f"{failed} of {asked} server requests failed after retries (more than --max-failed-share {limit:g})"


__all__ = ["failed_share_verdict", "is_client_error", "server_message"]
