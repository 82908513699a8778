"""Echo for ``bench/remote.py``, run on the other "machine" (a network namespace).

``python bench/remote_echo.py MODE IN OUT [SECRET_FILE PEER_PUBLIC]``: a SUB
connected to ``IN`` (the bench's PUB), a PUB bound at ``OUT``, every message
republished unchanged (zero-copy). ``MODE``: ``curve`` (both sockets set up
by ``va_actors.runtime.transport.Transport``, as every actor host's: Curve
server/client, the ZAP authenticator allowing only the bench's key, the link
settings), ``plain`` (plaintext tcp, bare pyzmq) or ``ipc``. Prints
``ready`` and runs until stdin closes.
"""

from __future__ import annotations

import sys
import threading

import zmq

from va_actors.runtime.transport import Transport, TransportSpec, endpoint_host, load_keypair

HWM = 100


def main() -> int:
    mode, inbound, outbound = sys.argv[1:4]
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
    sub.setsockopt(zmq.RCVHWM, HWM)
    pub.setsockopt(zmq.SNDHWM, HWM)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    link: Transport | None = None
    if mode == "curve":
        keys, peer = load_keypair(sys.argv[4]), sys.argv[5]
        link = Transport(ctx, TransportSpec(allow=(peer,), peers={endpoint_host(inbound): peer}),
                         keys)
        link.bind(pub, outbound)
        link.connect(sub, inbound)
    else:
        pub.bind(outbound)
        sub.connect(inbound)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if sub.poll(100):
                pub.send_multipart(sub.recv_multipart(copy=False), copy=False)

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    print("ready", flush=True)
    sys.stdin.read()
    stop.set()
    worker.join(2)
    if link is not None:
        link.close()
    sub.close(0)
    pub.close(0)
    ctx.term()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
