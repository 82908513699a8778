"""Raw pyzmq echo for ``bench/hop.py``: the baseline with no va-actors code at all.

``python bench/hop_raw_echo.py IN_ENDPOINT OUT_ENDPOINT`` connects a SUB to
``IN_ENDPOINT`` (subscribed to ``feed.``), binds a PUB at ``OUT_ENDPOINT`` and
republishes every multipart message unchanged: ``recv_multipart`` then
``send_multipart``, no decoding, no event loop. Frames are received without
copying and sent again as they are (zero-copy forwarding), and the high-water
marks match the actor host's (100 messages), so the only difference from the
actor runtime hop is the runtime itself. It runs until killed; on Linux the
kernel kills it when its parent (the bench) dies.
"""

from __future__ import annotations

import ctypes
import signal
import sys

import zmq

HWM = 100
"""The actor host's SNDHWM / RCVHWM for the default 2000 ms audio queue."""
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Have the kernel SIGKILL this process when the bench exits (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def serve(in_endpoint: str, out_endpoint: str) -> None:
    """Echo every message from ``in_endpoint`` to ``out_endpoint`` until killed."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, HWM)
    sub.setsockopt(zmq.SUBSCRIBE, b"feed.")
    sub.connect(in_endpoint)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, HWM)
    pub.bind(out_endpoint)
    recv, send = sub.recv_multipart, pub.send_multipart
    while True:
        send(recv(copy=False), copy=False)


def main() -> None:
    """Entry point: ``hop_raw_echo.py IN_ENDPOINT OUT_ENDPOINT``."""
    if len(sys.argv) != 3:
        sys.exit("usage: hop_raw_echo.py IN_ENDPOINT OUT_ENDPOINT")
    _die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    serve(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    main()
