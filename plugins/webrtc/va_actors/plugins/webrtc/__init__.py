"""The browser edge: talk to a pipeline from a web page over WebRTC (aiortc).

``webrtc.edge`` (:class:`WebRTCEdge`) serves a page at
``http://127.0.0.1:8780/``, accepts WebRTC peers with one offer/answer POST,
publishes each peer's microphone on ``<edge>.audio`` and camera on
``<edge>.video``, plays the agent's audio back and reports playback on
``<edge>.playback`` like every edge. See the plugin README.
"""

from .edge import WebRTCEdge
from .offer import BadOffer, Offer, parse_offer
from .peer import Peer, PeerOptions

__all__ = ["BadOffer", "Offer", "Peer", "PeerOptions", "WebRTCEdge", "parse_offer"]
