"""Sentence boundaries for speaking text as it streams in.

The one rule of the project, used by the TTS actor (cutting LLM deltas into
sentences) and by TTS plugins that synthesise sentence by sentence: a sentence
ends at ., !, ? or an ellipsis, possibly followed by one closing quote or
bracket, then whitespace ("3.5" does not end one). Newlines separate
sentences too: LLM output often has list items without a final stop.

A reply's first words may also be cut at a *clause* boundary (, ; : or a
dash, then whitespace) once enough words came (:func:`first_clause_end`), so
speech starts before the first sentence is complete.
"""

from __future__ import annotations

import re

_ENDS = "[.!?\u2026]"
_CLOSERS = "[\"')\\]\u201d\u2019]"
_BREAK = re.compile(rf"(?<={_ENDS}{_CLOSERS})\s+|(?<={_ENDS})\s+|\n+")
_CLAUSE = re.compile(r"(?<=[,;:\u2013\u2014])\s+")
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
MIN_CLAUSE_WORDS = 3
"""Words a clause needs before it is spoken on its own ("In the summer,"):
shorter ones ("Well,", "Sure,") sound clipped and save little time."""


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


def first_clause_end(text: str, min_words: int = MIN_CLAUSE_WORDS) -> int:
    """Length of the prefix of ``text`` that can be spoken now at the start of a reply.

    The complete sentences (as :func:`complete_end`), or else the text up to
    the last clause boundary after at least ``min_words`` words (0 if none).
    "3,5" or "1,000" is no boundary: one must be followed by whitespace.
    """
    end = complete_end(text)
    if end:
        return end
    for match in _CLAUSE.finditer(text):
        if len(_WORD.findall(text[:match.start()])) >= min_words:
            end = match.end()
    return end
