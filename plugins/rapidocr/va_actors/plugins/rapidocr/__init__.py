"""Text reading (OCR) video processor for va-actors.

``TextReader`` (entry point ``rapidocr.ocr``) reads the text in video frames
with RapidOCR (PP-OCR det/cls/rec ONNX models shipped in the ``rapidocr``
wheel; nothing is downloaded) and sends a :class:`TextReadEvent` per
processed frame. It is deliberately a heavy, blocking stage: see the README.
"""

from .events import TextReadEvent
from .reader import TextReader

__all__ = ["TextReadEvent", "TextReader"]
