"""Whether a transcript so far reads as an unfinished thought (English).

An STT that knows a turn detector just ended the turn can use this to wait a
little longer when the words are clearly not a whole utterance: the speaker
paused at a comma, trailed off ("If the reader will excuse me..."), or
stopped on a word that needs a continuation ("... and", "... of the").

The rule is deliberately narrow. Whisper ends most fragments read aloud with a
full stop ("The forms of printed letters should be beautiful."), and such a
fragment can be a whole answer in a conversation, so only text that cannot
end an utterance counts: measured on bench/assets/speech (bench/RESULTS.md,
"Turn-taking on human speech"), it never holds a real end of the corpus and
catches the fragments without final punctuation. Everything else is left to
the merge of a resumed turn (docs/runtime.md, "Resuming before the agent
speaks").
"""

from __future__ import annotations

import re

__all__ = ["CONTINUING_WORDS", "sounds_unfinished"]

CONTINUING_WORDS = frozenset({
    # articles and possessives
    "a", "an", "the", "my", "your", "our", "their", "its",
    # conjunctions and subordinators
    "and", "but", "or", "nor", "because", "although", "though", "if", "unless",
    "whether", "while", "whereas", "than", "that", "which", "who", "whose", "where",
    # prepositions that never end a sentence in speech
    "of", "to", "in", "into", "onto", "at", "for", "with", "from", "by", "about",
    "between", "through", "toward", "towards", "upon", "without", "within", "among",
    # hesitation
    "um", "uh", "er", "erm", "uhm",
})
"""Words an utterance does not end on: after them the speaker is mid-phrase.

Auxiliaries and pronouns ("than he was", "forget it") and words that are also
verbs or adverbs ("like", "so", "after", "on", "over") are left out: they end
real sentences.
"""

_FINAL = re.compile(r"[.!?]['\")\]\u201d\u2019]*$")
_TRAILING_OFF = re.compile(r"(\.\.\.|\u2026)['\")\]\u201d\u2019]*$")
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def sounds_unfinished(text: str) -> bool:
    """True if ``text`` cannot be the end of an utterance.

    That is: it does not end in ``.``, ``!`` or ``?`` (a comma, a dash, or no
    punctuation at all: Whisper punctuates what it hears as finished), it
    trails off with an ellipsis, or its last word is one of
    :data:`CONTINUING_WORDS` (whatever follows it). Empty text is not
    unfinished: there is nothing to wait for.
    """
    stripped = text.strip()
    if not stripped:
        return False
    if _TRAILING_OFF.search(stripped) or not _FINAL.search(stripped):
        return True
    words = _WORD.findall(stripped)
    return bool(words) and words[-1].lower() in CONTINUING_WORDS
