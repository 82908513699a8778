"""The Realtime client's bookkeeping alone: what was heard, the conversation mirror, settings."""

from __future__ import annotations

import pytest

from va_actors.plugins.openai._realtime_heard import Cut, HeardTracker
from va_actors.plugins.openai._realtime_items import ConversationItems, Item
from va_actors.plugins.openai._realtime_session import (
    SessionConfig,
    transcription_setting,
    turn_detection_setting,
)
from va_actors.plugins.openai._realtime_socket import Redactor, realtime_url


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- what was heard ----------------------------------------------------------------------
def test_without_reports_heard_is_time_since_the_first_audio_capped_by_what_came() -> None:
    clock = Clock()
    heard = HeardTracker(clock)
    heard.audio("r1", "i1", 400)
    clock.now += 0.25
    heard.audio("r1", "i1", 400)
    assert heard.heard_ms("r1") == pytest.approx(250)
    clock.now += 10
    assert heard.heard_ms("r1") == 800  # never beyond the audio received
    heard.audio_done("r1", "i1")
    assert heard.cuts("r1") == []  # heard in full: nothing to truncate


def test_a_playing_report_is_extrapolated_and_a_stop_is_exact() -> None:
    clock = Clock()
    heard = HeardTracker(clock)
    heard.audio("r1", "i1", 3000)
    heard.report("r1", 500, playing=True, interrupted=False)
    clock.now += 0.2
    assert heard.heard_ms("r1") == pytest.approx(700)
    heard.report("r1", 640, playing=False, interrupted=True)
    clock.now += 5
    assert heard.heard_ms("r1") == 640
    assert heard.cuts("r1") == [Cut("i1", 640, pytest.approx(640 / 3000))]
    assert heard.cuts("r1") == []  # each item is cut once


def test_an_interrupted_report_before_the_barge_in_still_needs_the_cut() -> None:
    heard = HeardTracker(Clock())
    heard.audio("r1", "i1", 2000)
    heard.audio_done("r1", "i1")
    heard.report("r1", 900, playing=False, interrupted=True)
    assert heard.latest_unheard() == "r1"


def test_a_reply_the_speaker_played_out_is_not_cut() -> None:
    heard = HeardTracker(Clock())
    heard.audio("r1", "i1", 2000)
    heard.response_done("r1")
    heard.report("r1", 1990, playing=False, interrupted=False)  # the speaker ran dry
    assert heard.latest_unheard() is None and heard.cuts("r1") == []


def test_with_a_speaker_reporting_an_unplayed_reply_was_not_heard() -> None:
    heard = HeardTracker(Clock())
    heard.report("r0", 100, playing=False, interrupted=False)
    heard.audio("r1", "i1", 1500)
    assert heard.heard_ms("r1") == 0
    assert heard.cuts("r1") == [Cut("i1", 0, 0.0)]


def test_items_of_one_response_are_cut_from_their_own_start() -> None:
    heard = HeardTracker(Clock())
    heard.audio("r1", "a", 1000)
    heard.audio_done("r1", "a")
    heard.audio("r1", "b", 1000)
    heard.report("r1", 1400, playing=False, interrupted=True)
    assert heard.cuts("r1") == [Cut("b", 400, 0.4)]  # "a" was heard in full


# -- the conversation mirror ----------------------------------------------------------------
def test_restore_events_rebuild_text_calls_and_outputs_in_order() -> None:
    items = ConversationItems()
    items.upsert({"id": "u1", "type": "message", "role": "user",
                  "content": [{"type": "input_audio", "transcript": None}]})
    items.set_text("u1", "Weather in Oslo?", role="user")
    items.upsert({"id": "c1", "type": "function_call", "call_id": "call_1", "name": "weather",
                  "arguments": '{"city": "Oslo"}'})
    items.add(Item(id="o1", type="function_call_output", call_id="call_1", output="3 C"))
    items.append_text("a1", "It is three degrees and clear")
    items.truncate("a1", "It is three")
    items.append_text("a1", " degrees")  # late transcript of the cut reply: ignored
    items.upsert({"id": "u2", "type": "message", "role": "user",
                  "content": [{"type": "input_audio", "transcript": None}]})  # never transcribed
    items.upsert({"id": "c2", "type": "function_call", "call_id": "call_2", "name": "x"})
    events = items.restore_events()
    assert [e["type"] for e in events] == ["conversation.item.create"] * 4
    assert [e["item"] for e in events] == [
        {"id": "u1", "type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
        {"id": "c1", "type": "function_call", "call_id": "call_1", "name": "weather",
         "arguments": '{"city": "Oslo"}'},
        {"id": "o1", "type": "function_call_output", "call_id": "call_1", "output": "3 C"},
        {"id": "a1", "type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "It is three"}]}]
    # a call whose tool is still running goes back too (its output follows)
    pending = [e["item"]["id"] for e in items.restore_events(frozenset({"call_2"}))]
    assert pending[-1] == "c2"


def test_the_mirror_is_bounded_and_drops_orphaned_outputs() -> None:
    items = ConversationItems(max_items=2)
    items.upsert({"id": "c1", "type": "function_call", "call_id": "k", "name": "f"})
    items.add(Item(id="o1", type="function_call_output", call_id="k", output="x"))
    items.append_text("a1", "hello")
    assert [i.id for i in items] == ["o1", "a1"]
    assert [e["item"]["id"] for e in items.restore_events()] == ["a1"]


# -- settings -----------------------------------------------------------------------------------
def test_turn_detection_and_transcription_settings() -> None:
    assert turn_detection_setting("semantic_vad") == {"type": "semantic_vad"}
    assert turn_detection_setting("none") is None and turn_detection_setting("") is None
    assert turn_detection_setting({"type": "server_vad", "silence_duration_ms": 300}) == {
        "type": "server_vad", "silence_duration_ms": 300}
    with pytest.raises(ValueError, match="server_vad, semantic_vad"):
        turn_detection_setting("webrtc_vad")
    with pytest.raises(TypeError):
        turn_detection_setting(3)
    assert transcription_setting("whisper-1") == {"model": "whisper-1"}
    assert transcription_setting("off") is None
    with pytest.raises(ValueError, match="'model'"):
        transcription_setting({"language": "en"})
    assert SessionConfig(turn_detection={"type": "server_vad",
                                         "silence_duration_ms": 350}).silence_ms == 350
    assert SessionConfig(turn_detection={"type": "semantic_vad"}).silence_ms is None
    with pytest.raises(ValueError, match="output_modalities"):
        SessionConfig(output_modalities=("audio", "video"))


def test_session_extra_fields_merge_into_the_audio_tree() -> None:
    config = SessionConfig(extra={"audio": {"input": {"noise_reduction": {"type": "near_field"}}},
                                  "max_output_tokens": 200})
    session = config.session([])
    assert session["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["max_output_tokens"] == 200 and "tool_choice" not in session


def test_urls_get_the_model_and_secrets_are_masked() -> None:
    assert realtime_url("wss://api.openai.com/v1/realtime", "gpt-realtime") == \
        "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert realtime_url("ws://h/v1/realtime?model=m1", "m2") == "ws://h/v1/realtime?model=m1"
    with pytest.raises(ValueError, match="ws:// or wss://"):
        realtime_url("ftp://h/x", "m")
    url = realtime_url("wss://u:pw@h/v1/realtime?api_key=sk-123", "m")
    redact = Redactor("sk-123", url)
    assert "sk-123" not in redact.display_url and "pw" not in redact.display_url
    assert redact(f"failed: {url} with sk-123") == f"failed: {redact.display_url} with ***"
