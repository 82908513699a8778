"""The local transport: media files, scripted users, WAV/speaker sinks, devices.

Every actor here is a :class:`va_actors.core.node.Node`. Sources publish
20 ms audio chunks on ``audio`` (or frames on ``video``) and
``SourceFinishedEvent`` / ``TransportErrorEvent`` on ``events``; sinks play
agent audio like a speaker and report ``AudioPlaybackEvent`` on ``playback``.
See the plugin README for parameters and launch-file snippets.
"""

from va_actors.core.edge.playback import PlaybackSink
from va_actors.core.edge.playout import Playout

from .audio_sources import (
    AudioFileSource,
    AudioTimeline,
    ScriptedAudioSource,
    Utterance,
    parse_utterances,
)
from .devices import MicrophoneSource, SpeakerSink
from .sinks import WavSink
from .video import SyntheticCamera, VideoFileSource
from .wav import WavWriter

__all__ = [
    "AudioFileSource",
    "AudioTimeline",
    "MicrophoneSource",
    "PlaybackSink",
    "Playout",
    "ScriptedAudioSource",
    "SpeakerSink",
    "SyntheticCamera",
    "Utterance",
    "VideoFileSource",
    "WavSink",
    "WavWriter",
    "parse_utterances",
]
