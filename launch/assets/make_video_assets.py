"""Regenerate the demo videos in launch/assets/video/ with PyAV (H.264, yuv420p).

    .venv/bin/python launch/assets/make_video_assets.py

- ``text.mp4``: 640x360, 10 fps, 8 s. Three lines of text on a dark
  background: a title that changes every 2 s, a counter that changes every
  second, and a line that slides across. Input for the OCR scaling demo
  (``rapidocr.ocr``).
- ``faces.mp4``: 640x480, 15 fps, 5 s. The astronaut's head and shoulders
  (the public-domain NASA photo in plugins/opencv/tests/assets/) moving
  across a soft background. Input for ``opencv.faces`` and the vision agent.

Everything is drawn from fixed inputs, so runs give the same pictures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).parent
OUT = HERE / "video"
REPO = HERE.parents[1]
FACE_PHOTO = REPO / "plugins" / "opencv" / "tests" / "assets" / "astronaut_face.jpg"

Image_ = np.ndarray
"""An rgb24 picture, shape (height, width, 3)."""

TITLES = ("ROOM 12 OPEN", "NEXT TALK 14:30", "EXIT LEFT", "COFFEE BREAK")


def _write(path: Path, frames: Iterator[Image_], width: int, height: int, fps: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        # One thread: x264's output is then the same on every run.
        stream.options = {"crf": "30", "preset": "slow", "threads": "1", "g": str(fps * 2)}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _text_frames(width: int, height: int, fps: int, seconds: int) -> Iterator[Image_]:
    font = cv2.FONT_HERSHEY_SIMPLEX
    for index in range(fps * seconds):
        t = index / fps
        img = np.full((height, width, 3), 30, np.uint8)
        img[:, :, 2] = 60  # a dark blue, not flat black
        title = TITLES[int(t // 2) % len(TITLES)]
        cv2.putText(img, title, (30, 80), font, 1.5, (255, 255, 255), 3, cv2.LINE_AA)
        cv2.putText(img, f"COUNT {int(t) + 1}", (30, 180), font, 1.5, (255, 230, 120), 3,
                    cv2.LINE_AA)
        x = int(width - (t / seconds) * (width + 200))
        cv2.putText(img, "WELCOME", (x, 290), font, 1.5, (140, 255, 140), 3, cv2.LINE_AA)
        yield img


def _background(width: int, height: int) -> Image_:
    ys, xs = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[:, :, 0] = 90 + (60 * xs / width).astype(np.uint8)
    img[:, :, 1] = 110 + (40 * ys / height).astype(np.uint8)
    img[:, :, 2] = 140
    return img


def _face_frames(width: int, height: int, fps: int, seconds: int) -> Iterator[Image_]:
    # Head and shoulders only: the whole crop's hard edges on a flat background
    # give the Haar cascade a false positive now and then.
    photo = np.asarray(Image.open(FACE_PHOTO).convert("RGB"))[10:200, 60:260]
    ph, pw = photo.shape[:2]
    background = _background(width, height)
    total = fps * seconds
    for index in range(total):
        u = index / max(1, total - 1)
        x = int(20 + u * (width - pw - 40))
        y = int((height - ph) / 2 + 60 * np.sin(2 * np.pi * u))
        img = background.copy()
        img[y : y + ph, x : x + pw] = photo
        yield img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    jobs: dict[str, tuple[Callable[[int, int, int, int], Iterator[Image_]], int, int, int, int]]
    jobs = {
        "text.mp4": (_text_frames, 640, 360, 10, 8),
        "faces.mp4": (_face_frames, 640, 480, 15, 5),
    }
    for name, (make, width, height, fps, seconds) in jobs.items():
        path = OUT / name
        _write(path, make(width, height, fps, seconds), width, height, fps)
        print(f"{path.relative_to(REPO)}: {width}x{height}, {fps} fps, {seconds} s, "
              f"{path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
