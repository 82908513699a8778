"""What is left to say of a reply, given what the user heard or what already went out.

Both rules count words, as the outputs do when they report ``heard_text``
(whole sentences played, then a proportional share of the current one):
the rest starts at the first word not yet heard (or sent), with the text's
own spacing and punctuation kept.
"""

from __future__ import annotations

import re

__all__ = ["continuation", "rest_after"]

_WORD = re.compile(r"\S+")


def rest_after(text: str, heard: str) -> str:
    """``text`` without its first ``len(heard.split())`` words (leading space dropped).

    >>> rest_after("It is sunny. Take a hat.", "It is sunny.")
    'Take a hat.'
    """
    count = len(heard.split())
    if count == 0:
        return text.lstrip()
    words = list(_WORD.finditer(text))
    if count >= len(words):
        return ""
    return text[words[count].start():]


def continuation(sent: str, regenerated: str) -> tuple[str, bool]:
    """The part of ``regenerated`` to publish after ``sent`` went out already.

    A regenerated reply that starts with ``sent`` goes on exactly where it
    stopped (returns the new tail, True). One that differs (a model that
    does not repeat itself word for word) goes on after as many words as
    were sent (returns that rest with a separating space, False): no word
    said twice, none skipped by count.
    """
    if regenerated.startswith(sent):
        return regenerated[len(sent):], True
    rest = rest_after(regenerated, sent)
    if rest and sent and not sent[-1].isspace():
        rest = " " + rest
    return rest, False
