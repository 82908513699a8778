"""Time TextReader.read next to the bare RapidOCR call it wraps (same run).

    .venv/bin/python plugins/rapidocr/bench/ocr.py [--frames N] [--threads N]

Frames: 'HELLO WORLD 2026' rendered on 800x200 (the reference case), and three
lines of text on 640x360 (like launch/assets/video/text.mp4), in rgb24. The
baseline is the RapidOCR engine called on a ready BGR array with the same
settings; ``read()`` adds the colour conversion and building the event. Rows
for RapidOCR's default detector scaling (shorter side to 736) and for the
fast setting (longer side at most 960, no orientation classifier).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from va_actors.core.video import VideoFrame
from va_actors.plugins.rapidocr import TextReader


def _frames() -> dict[str, np.ndarray]:
    hello = np.full((200, 800, 3), 255, np.uint8)
    cv2.putText(hello, "HELLO WORLD 2026", (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                (0, 0, 0), 4)
    lines = np.full((360, 640, 3), 40, np.uint8)
    for i, text in enumerate(("ROOM 12 OPEN", "NEXT TALK 14:30", "EXIT LEFT")):
        cv2.putText(lines, text, (30, 90 + i * 100), cv2.FONT_HERSHEY_SIMPLEX, 1.6,
                    (255, 255, 255), 3)
    return {"800x200, 1 line": hello, "640x360, 3 lines": lines}


def _times_ms(fn: Callable[[], object], n: int) -> list[float]:
    fn()  # warm-up (the first call also loads the models)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _row(label: str, times: list[float]) -> str:
    p99 = statistics.quantiles(times, n=100)[98] if len(times) >= 2 else times[0]
    return f"| {label:<58} | {statistics.median(times):9.1f} | {p99:7.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime intra-op threads (default: onnxruntime's)")
    args = parser.parse_args()
    settings: dict[str, dict[str, Any]] = {
        "default": {},
        "fast": {"det_limit_type": "max", "det_limit_side_len": 960, "use_cls": False},
    }
    print(f"{args.frames} frames per row, onnxruntime threads {args.threads or 'default'}")
    print(f"| {'frame / setting':<58} | median ms | p99 ms  |")
    print(f"|{'-' * 60}|----------:|--------:|")
    for name, kwargs in settings.items():
        reader = TextReader(threads=args.threads, **kwargs)
        engine = reader._engine
        for what, rgb in _frames().items():
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            frame = VideoFrame.from_ndarray(rgb)
            text = reader.read(frame).text.replace("\n", " / ")
            print(_row(f"baseline RapidOCR, {what}, {name}",
                       _times_ms(lambda bgr=bgr, engine=engine: engine(bgr), args.frames)))
            print(_row(f"TextReader.read, {what}, {name}",
                       _times_ms(lambda frame=frame, r=reader: r.read(frame), args.frames)))
            print(f"|   read: {text!r:<51} |           |         |")


if __name__ == "__main__":
    main()
