"""A long human utterance with a natural pause is one user turn and one reply (issue 17).

Plays bench/assets/speech's LibriSpeech 2412-153948-0000 (11.3 s, a reader
of Erewhon; natural pauses of 0.26, 0.29 and 0.70 s inside the sentence)
through launch/voice_agent.toml's real stack (Silero + Smart-Turn, Whisper,
SmolLM2 on llama.cpp, Piper), the way bench/voice_corpus.py does, and
counts the user turns the agent took of it (final transcripts, less those
the LLM took as the same turn going on) and the replies it started (less
those a continuation replaced unheard): one of each. The turn detector may
end the turn at a pause; the STT holds words that sound unfinished, and a
user resuming before the agent's first audio, or as it begins (the
supervisor's resume rule), cancels the reply and is the same turn.
"""

from __future__ import annotations

import pytest

from bench import voice_corpus
from bench.corpus import load

LONG_WITH_PAUSE = "librispeech_2412_153948_0000"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_a_long_utterance_with_a_natural_pause_is_one_turn_and_one_reply() -> None:
    utterance = next(u for u in load() if u.id == LONG_WITH_PAUSE)
    assert utterance.duration_s > 10 and utterance.longest_pause_s >= 0.6
    heard = voice_corpus.run([utterance], gap_s=8.0).heard[0]
    assert heard.turns >= 1, "the utterance was never heard as a turn"
    assert (heard.turns, heard.replies) == (1, 1), (
        f"{heard.turns} user turn(s) ({heard.detector_turns} detector ends, {heard.merged} "
        f"merged) and {heard.replies} repl(ies) "
        f"({heard.superseded} superseded); heard {heard.transcript!r}")
