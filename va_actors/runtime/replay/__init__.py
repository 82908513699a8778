"""Replay of missed input: what a restarted consumer missed while it was down.

A producer keeps a short ring of what it published per stream
(:mod:`.ring`); a consumer keeps the last sequence number it handed on per
``(source, topic)`` in a small mmap'd file of the run directory
(:mod:`.seen`), which outlives a ``kill -9``. The supervisor gives the next
incarnation those numbers; it asks its producers (through the supervisor) for
everything after them, holds live input meanwhile, and hands on the replay
first, then the live input without duplicates (:mod:`.merge`). The messages
and their header field are in :mod:`.protocol`. docs/runtime.md, "Replay of
missed input", tells the whole story.
"""
