"""Sentence boundaries for streamed text (TTS actor and sentence-by-sentence plugins)."""

from __future__ import annotations

from va_actors.core.tts.sentences import complete_end, first_clause_end, split_sentences


def test_complete_end_keeps_the_unfinished_sentence_for_later() -> None:
    text = 'He said "Go." Then it was 3.5 degrees. And th'
    end = complete_end(text)
    assert text[:end] == 'He said "Go." Then it was 3.5 degrees. '
    assert split_sentences(text[:end]) == ['He said "Go."', "Then it was 3.5 degrees."]
    assert complete_end("no stop yet") == 0


def test_newlines_end_list_items_without_a_stop() -> None:
    assert split_sentences("Options:\n- tea\n- coffee") == ["Options:", "- tea", "- coffee"]
    assert complete_end("- tea\n- cof") == len("- tea\n")


def _first_cut(reply: str) -> str:
    """What the TTS driver says first when ``reply`` streams in word by word."""
    text = ""
    for token in reply.split(" "):
        text += token + " "
        end = first_clause_end(text)
        if end:
            return text[:end].strip()
    return ""


def test_a_reply_starts_at_its_first_clause_after_three_words() -> None:
    assert _first_cut("The weather is usually warm and sunny in the summer, with a mix "
                      "of sunny days.") == "The weather is usually warm and sunny in the summer,"
    # "Sure," alone would sound clipped: wait for the sentence.
    assert _first_cut("Sure, I can do that. Here it is.") == "Sure, I can do that."
    assert _first_cut("Temperatures reach 105 degrees Celsius (210 degrees Fahrenheit) "
                      "in July.") == "Temperatures reach 105 degrees Celsius"
    assert first_clause_end("It costs 1,000 dollars or 3,5 euros") == 0


def test_a_long_first_sentence_is_cut_at_a_phrase_break_after_sixteen_words() -> None:
    long = ("The weather in the summer can be quite exceptional with temperatures reaching "
            "very high values during the day and dropping at night.")
    assert _first_cut(long) == ("The weather in the summer can be quite exceptional with "
                                "temperatures reaching very high values")
    # Not at a break so early that it splits the subject.
    assert _first_cut("The weather in July and August can vary greatly from one place to "
                      "another and from one year to the next") == (
        "The weather in July and August can vary greatly from one place to another")
    # No phrase break: the first sixteen words.
    words = " ".join(f"w{i}" for i in range(30))
    assert _first_cut(words) == " ".join(f"w{i}" for i in range(16))
    # A sentence that ends by its sixteenth word is said whole.
    assert _first_cut("The weather in July and August can vary greatly depending on the "
                      "location. In") == ("The weather in July and August can vary greatly "
                                          "depending on the location.")


def test_a_word_still_streaming_is_not_counted() -> None:
    eleven = "one two three four five six seven eight nine ten eleven"
    assert first_clause_end(eleven + " twel", max_words=12) == 0  # may become "twelfth"
    assert first_clause_end(eleven + " twelve ", max_words=12) == len(eleven + " twelve ")
    assert first_clause_end(eleven + " twelve", max_words=12) == 0
