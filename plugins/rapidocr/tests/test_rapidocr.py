"""TextReader with the real PP-OCR models from the rapidocr wheel.

Tests that run the models are marked slow (about 1 s to load, 0.1-2 s per read).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import re
import socket
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import cv2
import numpy as np
import pytest

from va_actors.core.events import BaseEvent
from va_actors.core.processors import ProcessorErrorEvent, VideoProcessor
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import PixelFormat, QueuedVideoTrack, VideoFrame
from va_actors.plugins.rapidocr import TextReader, TextReadEvent

TIME_BASE = Fraction(1, 90000)


def _text_frame(text: str = "HELLO WORLD 2026", size: tuple[int, int] = (800, 200),
                pts: int | None = 0, fmt: PixelFormat = PixelFormat.RGB24) -> VideoFrame:
    width, height = size
    image = np.full((height, width, 3), 255, np.uint8)
    if text:
        cv2.putText(image, text, (20, height // 2 + 20), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                    (0, 0, 0), 4)
    return VideoFrame.from_ndarray(image, PixelFormat.RGB24, pts, TIME_BASE).reformat(fmt)


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", text.upper())


def _collect(reader: TextReader, cls: type[BaseEvent]) -> list[BaseEvent]:
    got: list[BaseEvent] = []
    reader.events.subscribe(event_types=(cls,))(got.append)
    return got


@pytest.fixture(scope="module")
def reader() -> Iterator[TextReader]:
    """One reader per module: loading the models costs about a second."""
    yield TextReader()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", [PixelFormat.RGB24, PixelFormat.YUV420P])
def test_reads_rendered_text(reader: TextReader, fmt: PixelFormat) -> None:
    event = reader.read(_text_frame(pts=1234, fmt=fmt))
    assert _words(event.text) == ["HELLO", "WORLD", "2026"], event.lines
    assert all(line["score"] > 0.9 for line in event.lines)
    assert (event.image_width, event.image_height, event.frame_pts) == (800, 200, 1234)
    for line in event.lines:
        xs = [x for x, _ in line["box"]]
        ys = [y for _, y in line["box"]]
        assert 0 <= min(xs) < max(xs) <= 800 and 40 <= min(ys) < max(ys) <= 170, line
    assert event.processing_ms > 0


@pytest.mark.slow
def test_reads_different_text_differently(reader: TextReader) -> None:
    image = np.full((240, 640, 3), 255, np.uint8)
    cv2.putText(image, "OPEN 24 HOURS", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 3)
    cv2.putText(image, "EXIT", (20, 190), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 3)
    event = reader.read(VideoFrame.from_ndarray(image))
    # In reading order: the first row left to right, then the second.
    assert _words(event.text) == ["OPEN", "24", "HOURS", "EXIT"], event.lines


@pytest.mark.slow
@pytest.mark.parametrize("size", [(800, 200), (4, 4), (2, 2)])
def test_frames_without_text_give_an_empty_event(reader: TextReader,
                                                 size: tuple[int, int]) -> None:
    event = reader.process_frame(_text_frame("", size=size, pts=5))
    assert event is not None and event.lines == [] and event.text == ""
    assert (event.image_width, event.frame_pts) == (size[0], 5)


@pytest.mark.slow
def test_the_fast_detector_setting_still_reads(reader: TextReader) -> None:
    fast = TextReader(det_limit_type="max", det_limit_side_len=960, use_cls=False, threads=1)
    assert _words(fast.read(_text_frame()).text) == ["HELLO", "WORLD", "2026"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any download or network connection attempt is recorded and fails."""
    from rapidocr.utils import download_file

    attempts: list[str] = []

    def refuse_download(*args: Any, **kwargs: Any) -> None:
        attempts.append(f"download {args} {kwargs}")
        raise AssertionError("RapidOCR tried to download a file")

    def refuse_connect(self: socket.socket, address: Any) -> None:
        attempts.append(f"connect {address}")
        raise OSError("network disabled in this test")

    monkeypatch.setattr(download_file.DownloadFile, "run", staticmethod(refuse_download))
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return attempts


@pytest.mark.slow
def test_models_come_from_the_wheel_without_network_or_download(
        offline: list[str], capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fresh = TextReader(threads=1)
    fresh.warm_up()  # loads det, cls and rec
    event = fresh.read(_text_frame())
    assert _words(event.text) == ["HELLO", "WORLD", "2026"]
    assert offline == []
    out, err = capfd.readouterr()
    assert "Using" not in err + out and "RapidOCR" not in err + out  # quiet: no INFO lines
    assert not [r for r in caplog.records if r.name == "RapidOCR" and r.levelno < logging.ERROR]


@pytest.mark.slow
async def test_reads_a_track_at_its_fps_keeping_pts(reader: TextReader) -> None:
    source = QueuedVideoTrack(800, 200, fps=30, max_queue_size=2)
    forwarder = VideoForwarder(source, fps=30)
    reader = TextReader(fps=2, det_limit_type="max", det_limit_side_len=960)
    events = _collect(reader, TextReadEvent)
    # Words, not numbers: the Hershey font's 0 and O look alike.
    words = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL",
             "INDIA", "JULIET"]
    frames = [_text_frame(f"FRAME {word}", pts=i * 9000) for i, word in enumerate(words)]
    loop = asyncio.get_running_loop()
    try:
        await reader.process_video(source, None, shared_forwarder=forwarder)
        started = loop.time()
        for frame in frames:  # each read blocks this loop too, so this takes longer than 1.7 s
            source.add_frame(frame)
            await asyncio.sleep(0.17)
        await asyncio.sleep(0.5)
        elapsed = loop.time() - started
    finally:
        await reader.close()
        await forwarder.stop()
        source.stop()
    # At most fps=2 on average: the forwarder keeps a fixed grid, so after a
    # long read it may call again half an interval later (one extra at most).
    assert 2 <= len(events) <= 2 * elapsed + 2, (len(events), elapsed)
    assert len(events) < len(frames)  # frames that came during a read were skipped
    for event in events:
        assert isinstance(event, TextReadEvent) and event.frame_pts is not None
        index = event.frame_pts // 9000
        assert _words(event.text) == ["FRAME", words[index]], (event.frame_pts, event.text)


def test_bad_input_becomes_an_error_event_and_the_reader_keeps_going() -> None:
    reader = TextReader()
    errors = _collect(reader, ProcessorErrorEvent)
    assert reader.process_frame(b"not a frame") is None
    assert reader.process_frame(np.zeros((20, 20, 3), np.uint8)) is None
    assert len(errors) == 2 and reader.frames_read == 0
    first = errors[0]
    assert isinstance(first, ProcessorErrorEvent) and first.error_code == "bad_frame"
    assert "of type bytes" in first.context and "VideoFrame" in str(first.error)


def test_the_event_round_trips_through_the_wire_form() -> None:
    event = TextReadEvent(lines=[{"text": "HI", "score": 0.99, "box": [[0.0, 1.0]] * 4}],
                          text="HI", frame_pts=3, image_width=8, image_height=8)
    back = BaseEvent.from_dict(event.to_dict())
    assert isinstance(back, TextReadEvent) and back.lines == event.lines and back.frame_pts == 3


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"fps": 0}, "fps"), ({"text_score": 1.5}, "text_score"),
    ({"det_limit_side_len": 8}, "det_limit_side_len"),
    ({"det_limit_type": "mid"}, "det_limit_type"),
    ({"threads": 0}, "threads"),
])
def test_bad_params_are_rejected_by_name(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        TextReader(**kwargs)


def test_entry_point_loads_the_reader() -> None:
    eps = importlib.metadata.entry_points(group="va_actors.plugins")
    cls = next(ep for ep in eps if ep.name == "rapidocr.ocr").load()
    assert cls is TextReader and issubclass(cls, VideoProcessor)
