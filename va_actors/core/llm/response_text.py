"""The reply text inside a provider's response, whatever SDK produced it.

The guide's plugins return ``self._create_response_event(response)`` with the
provider's own response object; the text is found in the shapes SDKs use:

- OpenAI chat completions: ``choices[0].message.content`` (``choices[0].text``
  for plain completions, ``choices[0].delta.content`` for a stream chunk);
- OpenAI Responses API: ``output_text``;
- Ollama and similar: ``message.content``;
- Anthropic and content-block APIs: ``content`` as a list of blocks with ``text``;
- anything with ``text`` or ``content`` as a string; a plain string.

Objects and dicts (JSON as the HTTP API returned it) are read alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from va_actors.core.provider_objects import field_of

__all__ = ["response_text"]

_MAX_DEPTH = 4


def response_text(response: Any) -> str | None:
    """The reply text in ``response``, or None when no known shape holds any."""
    return _text(response, 0)


def _text(value: Any, depth: int) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or depth > _MAX_DEPTH:
        return None
    choices = field_of(value, "choices")
    if _is_list(choices) and choices:
        first = choices[0]
        for holder in (field_of(first, "message"), field_of(first, "delta")):
            found = _content(field_of(holder, "content"), depth)
            if found is not None:
                return found
        found = field_of(first, "text")
        if isinstance(found, str):
            return found
    for name in ("output_text", "text"):
        found = field_of(value, name)
        if isinstance(found, str):
            return found
    found = _content(field_of(value, "content"), depth)
    if found is not None:
        return found
    message = field_of(value, "message")
    return _text(message, depth + 1) if message is not None else None


def _content(content: Any, depth: int) -> str | None:
    """``content`` as a string, or the joined text of a list of content blocks."""
    if isinstance(content, str):
        return content
    if not _is_list(content):
        return None
    parts = [_text(block, depth + 1) for block in content]
    texts = [p for p in parts if p]
    return "".join(texts) if texts else None


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)
