"""Sentence boundaries for streamed text (TTS actor and sentence-by-sentence plugins)."""

from __future__ import annotations

from va_actors.core.tts.sentences import complete_end, split_sentences


def test_complete_end_keeps_the_unfinished_sentence_for_later() -> None:
    text = 'He said "Go." Then it was 3.5 degrees. And th'
    end = complete_end(text)
    assert text[:end] == 'He said "Go." Then it was 3.5 degrees. '
    assert split_sentences(text[:end]) == ['He said "Go."', "Then it was 3.5 degrees."]
    assert complete_end("no stop yet") == 0


def test_newlines_end_list_items_without_a_stop() -> None:
    assert split_sentences("Options:\n- tea\n- coffee") == ["Options:", "- tea", "- coffee"]
    assert complete_end("- tea\n- cof") == len("- tea\n")
