"""A cable with delay and loss, in user space: two TAP devices and this relay between them.

For kernels without the netem qdisc (``tc qdisc add ... netem`` answers
"Specified qdisc kind is unknown"). ``python wire_relay.py TAP_A TAP_B``
creates both TAP devices (Ethernet, no packet-info header), prints
``ready``, and moves every frame from one to the other. Lines on stdin set
the impairment of both directions: ``delay MS loss PERCENT`` (``delay 0
loss 0``: a plain cable). Frames are held for the delay (order kept) and
dropped at random with the loss probability, as netem does, so TCP sees
real latency, real losses and real retransmissions. The caller moves the
devices into their namespaces (``ip link set TAP netns NS``); the relay's
file descriptors stay attached. It exits when stdin closes.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536


def open_tap(name: str) -> int:
    """A TAP device named ``name``; its file descriptor (non-blocking)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def main() -> int:
    a, b = open_tap(sys.argv[1]), open_tap(sys.argv[2])
    peer = {a: b, b: a}
    delay_s, loss = 0.0, 0.0
    held: list[tuple[float, int, int, bytes]] = []  # (due, order, fd to write, frame)
    order = 0
    rng = random.Random(1)
    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 1.0
        readable, _, _ = select.select([a, b, stdin], [], [], timeout)
        if stdin in readable:
            line = sys.stdin.readline()
            if not line:
                return 0
            words = line.split()
            if len(words) == 4 and words[0] == "delay" and words[2] == "loss":
                delay_s, loss = float(words[1]) / 1000, float(words[3]) / 100
                print(f"delay {delay_s * 1000:g} ms loss {loss * 100:g} %", flush=True)
        now = time.monotonic()
        for fd in (a, b):
            if fd not in readable:
                continue
            while True:
                try:
                    frame = os.read(fd, MAX_FRAME)
                except (BlockingIOError, OSError):
                    break
                if loss and rng.random() < loss:
                    continue
                order += 1
                heapq.heappush(held, (now + delay_s, order, peer[fd], frame))
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, fd, frame = heapq.heappop(held)
            # OSError: the device is down (a cut cable), the frame is lost.
            with contextlib.suppress(OSError):
                os.write(fd, frame)


if __name__ == "__main__":
    raise SystemExit(main())
