"""Bounds the decoder enforces on every message (DESIGN §3: strict codec)."""

from __future__ import annotations

PROTOCOL_VERSION = 1
"""Bumped on any incompatible change to the header or framing."""

MAX_TOPIC_BYTES = 256
MAX_HEADER_BYTES = 64 * 1024
MAX_PAYLOAD_FRAMES = 8
MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest single payload frame (a 4K RGB frame is 24.9 MB)."""
MAX_MESSAGE_BYTES = 96 * 1024 * 1024
MAX_CONTAINER_LEN = 4096
"""Longest array / map inside a header (msgpack max_array_len / max_map_len)."""
MAX_STR_BYTES = 1024 * 1024
MAX_DEPTH = 16
"""Deepest nesting of maps/arrays accepted inside a header."""
ZERO_COPY_BYTES = 64 * 1024
"""Payloads at least this large are sent without copying (pyzmq's own crossover)."""
