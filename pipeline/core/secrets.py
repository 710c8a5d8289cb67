"""Credentials kept out of what a run sends by accident and of what it writes: the user name and password of a URL
dropped, an API key redacted from any text a server sends back."""

from __future__ import annotations

import re

REDACTED = "[redacted]"
"""What stands in for a secret in redacted text."""


def without_credentials(url: str) -> tuple[str, bool]:
    """`url` without its `user:password@` part, and whether it had one (a plain string edit: never raises)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, tail = re.match(r"([^/?#]*)(.*)", rest, re.DOTALL).groups()  # type: ignore[union-attr]
    if "@" not in authority:
        return url, False
    host = authority.rpartition("@")[2]
    return f"{scheme}{sep}{host}{tail}", True


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` replaced by `REDACTED` (an empty secret changes nothing)."""
    return text.replace(secret, REDACTED) if secret else text


def redacted_line(err: BaseException, secret: str, limit: int = 300) -> str:
    """An exception's first message line with `secret` redacted before it is cut to `limit` characters (so no part
    of the secret survives the cut), or its type's name when it has no message."""
    text = redact(str(err), secret).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__


__all__ = ["REDACTED", "redact", "redacted_line", "without_credentials"]
