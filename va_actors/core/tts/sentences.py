"""Sentence boundaries for speaking text as it streams in.

The one rule of the project, used by the TTS actor (cutting LLM deltas into
sentences) and by TTS plugins that synthesise sentence by sentence: a sentence
ends at ., !, ? or an ellipsis, possibly followed by one closing quote or
bracket, then whitespace ("3.5" does not end one). Newlines separate
sentences too: LLM output often has list items without a final stop.

A reply's first words may also be cut at a *clause* boundary (, ; : or a
dash, then whitespace, or before an opening bracket) once enough words came
(:func:`first_clause_end`), so speech starts before the first sentence is
complete. A first sentence with no such boundary is cut at a phrase break
by its ``MAX_FIRST_WORDS``-th word: a small LLM's 40-word sentence would
otherwise keep the user waiting two seconds for the first word.
"""

from __future__ import annotations

import re

_ENDS = "[.!?\u2026]"
_CLOSERS = "[\"')\\]\u201d\u2019]"
_BREAK = re.compile(rf"(?<={_ENDS}{_CLOSERS})\s+|(?<={_ENDS})\s+|\n+")
_CLAUSE = re.compile(r"(?<=[,;:\u2013\u2014])\s+|\s+(?=[(\[])")
_PHRASE = re.compile(r"\s+(?=(?:and|but|or|so|with|which|who|that|while|because|when|where|"
                     r"although|though|if|as|since|until|after|before|during)\b)",
                     re.IGNORECASE)
"""Whitespace before a word that starts a phrase: where a speaker may breathe."""
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
MIN_CLAUSE_WORDS = 3
"""Words a clause needs before it is spoken on its own ("In the summer,"):
shorter ones ("Well,", "Sure,") sound clipped and save little time."""
MAX_FIRST_WORDS = 16
"""Complete words after which a first sentence without a clause boundary is
cut anyway (at its last phrase break, or after this word). Most first
sentences end sooner and are said whole."""
MIN_PHRASE_WORDS = 6
"""Words before a phrase break that may cut a long first sentence: earlier
breaks split a subject ("The weather in July | and August ...")."""


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


def first_clause_end(text: str, min_words: int = MIN_CLAUSE_WORDS,
                     max_words: int = MAX_FIRST_WORDS) -> int:
    """Length of the prefix of ``text`` that can be spoken now at the start of a reply.

    The complete sentences (as :func:`complete_end`); or else the text up to
    the last clause boundary after at least ``min_words`` words; or else,
    once ``max_words`` complete words came, the text before the last phrase
    break ("... exceptional | with temperatures") after ``MIN_PHRASE_WORDS``
    words, or the first ``max_words`` words. 0 if none of these yet. "3,5" or
    "1,000" is no boundary: one must be followed by whitespace.
    """
    end = complete_end(text)
    if end:
        return end
    for match in _CLAUSE.finditer(text):
        if _words_before(text, match.start()) >= min_words:
            end = match.end()
    if end:
        return end
    complete = text[:len(text.rstrip()) if text[-1:].isspace() else _last_space(text)]
    words = list(_WORD.finditer(complete))
    if len(words) < max_words:
        return 0
    cut = words[max_words - 1].end()
    for match in _PHRASE.finditer(text, 0, cut + 1):
        if _words_before(text, match.start()) >= MIN_PHRASE_WORDS:
            end = match.start()
    end = end or cut
    return end + len(text[end:]) - len(text[end:].lstrip())


def _words_before(text: str, index: int) -> int:
    return len(_WORD.findall(text[:index]))


def _last_space(text: str) -> int:
    """Index of the last whitespace in ``text`` (0 if none): the words before
    it are complete, the one after it may still grow."""
    match = re.search(r"\s\S*$", text)
    return match.start() if match else 0
