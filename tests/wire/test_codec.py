"""Wire codec: every kind round-trips; malformed input is rejected with a reason."""

from __future__ import annotations

import contextlib

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from va_actors.core.audio import PcmData
from va_actors.core.edge import Participant
from va_actors.core.events.foreign import ForeignEvent
from va_actors.core.stt.events import STTTranscriptEvent
from va_actors.core.video import VideoFrame
from va_actors.wire import (
    Control,
    DropReason,
    InputRef,
    Kind,
    TextChunk,
    WireError,
    decode,
    encode,
    encode_audio,
    encode_control,
    encode_event,
    encode_text,
    encode_video,
    limits,
)
from va_actors.wire.topics import TopicError, split, topic

META = {"seq": 7, "epoch": 2, "source": "mic"}


def stereo_chunk() -> PcmData:
    samples = np.arange(2 * 960, dtype=np.int16).reshape(2, 960)
    pcm = PcmData(sample_rate=48000, format="s16", samples=samples, channels=2, pts=960)
    pcm.participant = Participant(user_id="ana", id="p1")
    return pcm


def test_audio_round_trip_keeps_samples_and_metadata() -> None:
    pcm = stereo_chunk()
    msg = decode(encode_audio("mic.audio", pcm, **META))
    assert (msg.topic, msg.kind, msg.seq, msg.epoch, msg.source) == ("mic.audio", Kind.AUDIO,
                                                                     7, 2, "mic")
    assert msg.stream == "audio"
    back = msg.audio()
    np.testing.assert_array_equal(back.samples, pcm.samples)
    assert (back.sample_rate, back.channels, back.pts) == (48000, 2, 960)
    assert back.participant == Participant(user_id="ana", id="p1")


def test_payload_is_a_separate_frame_not_inside_msgpack() -> None:
    frames = encode_audio("mic.audio", stereo_chunk(), **META)
    assert len(frames) == 3
    assert len(frames[1]) < 200 and len(frames[2]) == 2 * 960 * 2


@pytest.mark.parametrize("fmt", ["rgb24", "yuv420p"])
def test_video_round_trip_is_bit_exact(fmt: str) -> None:
    rng = np.random.default_rng(1)
    frame = VideoFrame.from_ndarray(rng.integers(0, 255, (72, 128, 3), dtype=np.uint8),
                                    pts=3000).reformat(fmt)
    msg = decode(encode_video("cam.video", frame, ref=InputRef("cam", 41, 2999), **META))
    back = msg.video()
    assert back.checksum() == frame.checksum()
    assert (back.width, back.height, back.pts) == (128, 72, 3000)
    assert msg.ref == InputRef("cam", 41, 2999)


def test_event_text_and_control_round_trip() -> None:
    event = STTTranscriptEvent(text="turn on the lights", participant=Participant(user_id="u"))
    back = decode(encode_event("stt.transcript", event, **META)).event()
    assert isinstance(back, STTTranscriptEvent) and back.text == "turn on the lights"
    chunk = TextChunk("Hello.", final=True, response_id="r1", index=3)
    assert decode(encode_text("llm.text", chunk, **META)).text() == chunk
    control = Control("epoch", {"epoch": 5, "reason": "barge-in"})
    assert decode(encode_control("sys.epoch", control, **META)).control() == control
    assert decode(encode_control("sys.epoch", control, **META)).value() == control


def valid_header(**overrides: object) -> bytes:
    header = {"v": limits.PROTOCOL_VERSION, "kind": "text", "seq": 1, "ts": 1, "epoch": 0,
              "src": "x", "text": "hi"}
    header.update(overrides)
    return msgpack.packb(header)


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b"only-topic"], DropReason.TRUNCATED),
        ([b"t.x", b"\xc1\xff\x00"], DropReason.MALFORMED),
        ([b"t.x", msgpack.packb({"v": 1})[:-1]], DropReason.TRUNCATED),
        ([b"t.x", msgpack.packb([1, 2, 3])], DropReason.MALFORMED),
        ([b"t.x", valid_header(v=99)], DropReason.VERSION),
        ([b"t.x", valid_header(kind="smell")], DropReason.UNKNOWN_KIND),
        ([b"t.x", valid_header(seq=-1)], DropReason.INVALID),
        ([b"t.x", valid_header(text=None)], DropReason.INVALID),
        ([b"t.x", valid_header() + b"junk"], DropReason.MALFORMED),
        ([b"t.x", msgpack.packb({"v": 1, "x": msgpack.ExtType(5, b"pickle")})],
         DropReason.MALFORMED),
        ([b"t.x", b"\x00" * (limits.MAX_HEADER_BYTES + 1)], DropReason.OVERSIZED),
        ([b"t.x", valid_header()] + [b""] * (limits.MAX_PAYLOAD_FRAMES + 1),
         DropReason.OVERSIZED),
        ([b"", valid_header()], DropReason.INVALID),
        ([b"\xff\xfe", valid_header()], DropReason.MALFORMED),
    ],
    ids=["one-frame", "garbage", "cut-header", "not-a-map", "wrong-version", "unknown-kind",
         "negative-seq", "text-missing", "trailing-bytes", "ext-type", "huge-header",
         "too-many-frames", "empty-topic", "non-utf8-topic"],
)
def test_malformed_messages_are_rejected_with_a_reason(frames: list[bytes],
                                                       reason: DropReason) -> None:
    with pytest.raises(WireError) as info:
        decode(frames)
    assert info.value.reason is reason


def test_media_payload_mismatches_are_rejected() -> None:
    frames = encode_audio("mic.audio", stereo_chunk(), **META)
    with pytest.raises(WireError, match="whole number"):
        decode([frames[0], frames[1], bytes(frames[2])[:-1]])
    video = encode_video("cam.video", VideoFrame.from_ndarray(np.zeros((4, 4, 3), np.uint8)),
                         **META)
    with pytest.raises(WireError, match="planes"):
        decode([*video, b"extra"])
    bad_rate = encode("mic.audio", Kind.AUDIO, {"sample_rate": 0, "channels": 1,
                                                 "format": "s16"}, [b"\0\0"], **META)
    with pytest.raises(WireError, match="sample_rate"):
        decode(bad_rate)


def test_an_event_without_a_type_is_an_invalid_message_not_a_crash() -> None:
    frames = encode("x.events", Kind.EVENT, {"event": {"text": "no type"}}, **META)
    with pytest.raises(WireError) as info:
        decode(frames).event()
    assert info.value.reason is DropReason.INVALID


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=5))
def test_random_bytes_never_escape_as_anything_but_wire_errors(frames: list[bytes]) -> None:
    with contextlib.suppress(WireError):
        decode(frames)


def test_topic_names_are_checked() -> None:
    assert topic("stt", "transcript") == "stt.transcript"
    assert split("tts.audio") == ("tts", "audio")
    for bad in ("no-dot", ".audio", "a.b.c", "1x.audio"):
        with pytest.raises(TopicError):
            split(bad)


def test_deeply_nested_headers_are_rejected() -> None:
    nested: object = "leaf"
    for _ in range(limits.MAX_DEPTH + 2):
        nested = [nested]
    with pytest.raises(WireError) as info:
        decode([b"t.x", valid_header(deep=nested)])
    assert info.value.reason is DropReason.MALFORMED


def test_extra_header_fields_travel_and_cannot_shadow_the_format() -> None:
    pcm = stereo_chunk()
    msg = decode(encode_audio("tts.audio", pcm, extra={"text": "Hello.", "response_id": "r1"},
                              **META))
    assert (msg.fields["text"], msg.fields["response_id"]) == ("Hello.", "r1")
    with pytest.raises(TypeError, match="reserved"):
        encode_audio("tts.audio", pcm, extra={"sample_rate": 8000}, **META)


def test_an_event_of_an_unknown_class_arrives_as_a_foreign_event() -> None:
    # A consumer that never imports the sender's plugin still gets the event, as data.
    frames = encode("ocr.state", Kind.EVENT,
                    {"event": {"type": "plugin.elsewhere.text", "text": "HELLO", "n": 2}},
                    **META)
    event = decode(frames).event()
    assert isinstance(event, ForeignEvent)
    assert event.event_type == "plugin.elsewhere.text" and event["text"] == "HELLO"
    assert event.data == {"text": "HELLO", "n": 2}
