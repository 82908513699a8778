"""Word error rate: the one normalising word comparison the benches use.

References are written as people say them ("ten meters", "eighteen
thirteen", "Mister Quilter"); an STT writes "10 meters", "1813", "Mr.
Quilter". :func:`normalise` brings both to the same words: lower case,
punctuation dropped (apostrophes inside words kept), hyphens split, the
common spoken abbreviations spelled out, and numbers in digits written out
as words (four-digit numbers from 1100 to 1999 as years, "fourteen fifty
five"; others as cardinals).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint",
                  "ok": "okay"}
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def _under_100(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    tens, ones = divmod(n, 10)
    return [_TENS[tens]] + ([_ONES[ones]] if ones else [])


def number_words(n: int) -> list[str]:
    """``n`` (0 <= n < 10**9) in words; 1100-1999 read as a year."""
    if 1100 <= n <= 1999 and n % 100:
        high, low = divmod(n, 100)
        return _under_100(high) + (["oh"] if low < 10 else []) + _under_100(low)
    if n < 100:
        return _under_100(n)
    for size, name in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            high, rest = divmod(n, size)
            return number_words(high) + [name] + (number_words(rest) if rest else [])
    raise AssertionError("unreachable")


def normalise(text: str) -> list[str]:
    """The words of ``text`` as :func:`word_errors` compares them."""
    words: list[str] = []
    spaced = re.sub(r"[-\u2010-\u2015/]", " ", text.lower().replace("\u2019", "'"))
    for token in _TOKEN.findall(spaced):
        if token.isdigit():
            words += number_words(int(token)) if len(token) < 10 else list(token)
        else:
            words.append(_ABBREVIATIONS.get(token, token))
    return words


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions + deletions + insertions between the normalised word sequences."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]


def wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Word error rate over (reference, hypothesis) pairs: errors / reference words."""
    errors = words = 0
    for reference, hypothesis in pairs:
        errors += word_errors(reference, hypothesis)
        words += len(normalise(reference))
    if words == 0:
        raise ValueError("no reference words")
    return errors / words
