"""The incomplete-words rule an STT uses to hold a turn open (issue 17)."""

from __future__ import annotations

import pytest

from va_actors.core.stt.completeness import sounds_unfinished


@pytest.mark.parametrize("text", [
    # Whisper's transcripts of corpus fragments cut at a pause (bench/assets/speech)
    "If the reader will excuse me...",
    "and so my fellow americans",
    "And so my fellow Americans asked not",
    "Now...",
    # a comma, a dash, a continuing word whatever the punctuation
    "I was wondering,", "My name is John and", "I want to go to the.",
    "It depends on whether", "Could you tell me about \u2026", "Well, um",
])
def test_fragments_sound_unfinished(text: str) -> None:
    assert sounds_unfinished(text)


@pytest.mark.parametrize("text", [
    # every final transcript of the corpus's utterances ends like these
    "Please call Stella.", "will we ever forget it?", "Go forward 10 meters.", "In 1813.",
    "Yes.", "No.", "Had he married a more amiable woman he might have been made still more "
    "respectable than he was.", "God bless them. I hope I'll go on seeing them forever.",
    "Author of the Danger Trail, Philip Stills, etc.", "Tell me a joke!",
    'He said "stop."', "",
])
def test_whole_utterances_do_not(text: str) -> None:
    assert not sounds_unfinished(text)
