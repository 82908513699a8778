"""Time FaceDetector.detect next to the bare OpenCV cascade call it wraps (same run).

    .venv/bin/python plugins/opencv/bench/faces.py [--frames N]

Frames: the astronaut test photo (head and shoulders) pasted on a grey 640x480 and 1280x720
canvas (one face), and an empty 640x480 canvas (no face), in rgb24 and
yuv420p. The baseline is ``cv2.CascadeClassifier.detectMultiScale`` on a
ready grey image with the same settings; ``detect()`` adds the conversion to
grey, the drawing of the annotated frame and the conversion back to the
input's pixel format. Single thread (``cv2.setNumThreads(1)``) unless
``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from va_actors.core.video import PixelFormat, VideoFrame
from va_actors.plugins.opencv import FaceDetector
from va_actors.plugins.opencv.faces import load_cascade

ASSET = Path(__file__).parents[1] / "tests" / "assets" / "astronaut_face.jpg"


def _canvas(width: int, height: int, face: bool) -> np.ndarray:
    img = np.full((height, width, 3), 110, np.uint8)
    if face:
        # The head and shoulders only: the photo's hard edges on a flat canvas
        # give the cascade a false positive now and then.
        photo = np.asarray(Image.open(ASSET).convert("RGB"))[10:200, 60:260]
        y, x = (height - photo.shape[0]) // 2, (width - photo.shape[1]) // 2
        img[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
    return img


def _times_ms(fn: Callable[[], object], n: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _row(label: str, times: list[float]) -> str:
    p99 = statistics.quantiles(times, n=100)[98] if len(times) >= 2 else times[0]
    return f"| {label:<50} | {statistics.median(times):9.1f} | {p99:7.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    detector = FaceDetector()
    cascade = load_cascade()
    print(f"opencv {cv2.__version__}, {args.frames} frames per row, "
          f"cv2 threads {cv2.getNumThreads()}")
    print("| frame                                              | median ms | p99 ms  |")
    print("|----------------------------------------------------|----------:|--------:|")
    for width, height, face in ((640, 480, True), (640, 480, False), (1280, 720, True)):
        rgb = _canvas(width, height, face)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        what = f"{width}x{height} {'face' if face else 'no face'}"

        def bare(grey: np.ndarray = grey) -> object:
            return cascade.detectMultiScale(grey, scaleFactor=detector.scale_factor,
                                            minNeighbors=detector.min_neighbors,
                                            minSize=detector.min_size)

        print(_row(f"baseline detectMultiScale, {what}", _times_ms(bare, args.frames)))
        for fmt in (PixelFormat.RGB24, PixelFormat.YUV420P):
            frame = VideoFrame.from_ndarray(rgb).reformat(fmt)
            found = len(detector.detect(frame).event.boxes)
            times = _times_ms(lambda frame=frame: detector.detect(frame), args.frames)
            print(_row(f"FaceDetector.detect {fmt.value}, {what} ({found})", times))


if __name__ == "__main__":
    main()
