"""Sentence boundaries for speaking text as it streams in.

The one rule of the project, used by the TTS actor (cutting LLM deltas into
sentences) and by TTS plugins that synthesise sentence by sentence: a sentence
ends at ., !, ? or an ellipsis, possibly followed by one closing quote or
bracket, then whitespace ("3.5" does not end one). Newlines separate
sentences too: LLM output often has list items without a final stop.
"""

from __future__ import annotations

import re

_ENDS = "[.!?\u2026]"
_CLOSERS = "[\"')\\]\u201d\u2019]"
_BREAK = re.compile(rf"(?<={_ENDS}{_CLOSERS})\s+|(?<={_ENDS})\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into non-empty, stripped sentences, in order."""
    return [part.strip() for part in _BREAK.split(text) if part and part.strip()]


def complete_end(text: str) -> int:
    """Length of the prefix of ``text`` made of complete sentences (0 if none).

    For streamed text: ``text[:n]`` can be spoken now, ``text[n:]`` waits for
    more deltas.
    """
    end = 0
    for match in _BREAK.finditer(text):
        end = match.end()
    return end
