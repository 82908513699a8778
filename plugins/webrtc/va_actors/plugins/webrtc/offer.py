"""The one signalling message: the browser POSTs its offer, the edge answers.

``POST /offer`` with ``{"type": "offer", "sdp": "v=0..."}`` (JSON, at most
:data:`MAX_OFFER_BYTES`). Anything else is refused with 400 and a reason,
before a peer connection is made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MAX_OFFER_BYTES = 256 * 1024
"""Largest offer body accepted (a browser's offer is 3-10 KiB)."""


class BadOffer(ValueError):
    """The request is not a usable offer; the message says why (sent back with 400)."""


@dataclass(frozen=True)
class Offer:
    """A checked offer."""

    sdp: str
    name: str = ""
    """An optional display name the page sends (the participant's user id)."""


def parse_offer(body: bytes, content_type: str) -> Offer:
    """Check an offer request body.

    Raises:
        BadOffer: naming what is wrong.
    """
    if content_type != "application/json":
        raise BadOffer(f"expected Content-Type application/json, got {content_type or 'none'!r}")
    if len(body) > MAX_OFFER_BYTES:
        raise BadOffer(f"offer body is {len(body)} bytes; at most {MAX_OFFER_BYTES}")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadOffer(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadOffer(f"body must be a JSON object, got {type(data).__name__}")
    if data.get("type") != "offer":
        raise BadOffer(f"'type' must be \"offer\", got {data.get('type')!r}")
    sdp = data.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BadOffer("'sdp' must be a session description starting with 'v=0'")
    if "\nm=" not in sdp:
        raise BadOffer("'sdp' has no media section (m=audio): nothing to connect")
    name = data.get("name", "")
    if not isinstance(name, str) or len(name) > 64:
        raise BadOffer("'name' must be a string of at most 64 characters")
    return Offer(sdp=sdp, name=name.strip())
