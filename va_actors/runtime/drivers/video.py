"""Video processors: frames through a shared forwarder, an annotated track out."""


from __future__ import annotations

import contextlib
from typing import Any

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.processors import (
    AudioProcessor,
    ProcessorErrorEvent,
    VideoProcessor,
    VideoPublisher,
)
from va_actors.core.video.frame import VideoFrame
from va_actors.core.video.track import VideoTrackClosedError
from va_actors.runtime.drivers.audio import processor_route
from va_actors.runtime.drivers.base import (
    Driver,
    HostPort,
)
from va_actors.runtime.video_feed import CURRENT_INPUT, VideoFeed
from va_actors.wire.codec import Message
from va_actors.wire.messages import Kind


# -- video ---------------------------------------------------------------------------------
class VideoProcessorDriver(Driver):
    """Video -> track -> shared forwarder -> ``process_video``; output track on ``video``.

    Audio inputs go to ``process_audio`` when the processor is also an
    AudioProcessor.
    """

    outputs = ("video", "state", "events")
    error_event = ProcessorErrorEvent

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        self._feed = VideoFeed(host.instance)

    async def start(self) -> None:
        self.forward_events(processor_route)
        await self._start_plugin()
        if isinstance(self.plugin, VideoPublisher):
            self.host.spawn(self._publish_track(self.plugin.publish_video_track()),
                            "publish_video_track")

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.VIDEO:
            feed = self._feed
            if feed.push(msg.video(), CURRENT_INPUT.get()):
                try:
                    await self.plugin.process_video(feed.track, None, feed.forwarder)
                finally:
                    feed.adopt_handlers()
            # The next frame is handed on once the handlers are done with this
            # one: a slow processor gets the newest frame, a replica can report.
            await feed.wait_handled()
        elif msg.kind is Kind.AUDIO and isinstance(self.plugin, AudioProcessor):
            await self.plugin.process_audio(msg.audio())

    async def _publish_track(self, track: Any) -> None:
        last: object = None
        while True:
            try:
                frame = await track.recv()
            except VideoTrackClosedError:
                return
            if frame is last:  # a paced repeat of the same frame is not new output
                continue
            last = frame
            if not isinstance(frame, VideoFrame):
                frame = VideoFrame.from_av(frame)
            self.host.publish("video", frame, ref=self._feed.ref_for_pts(frame.pts))

    async def close(self) -> None:
        if isinstance(self.plugin, VideoProcessor):
            with contextlib.suppress(Exception):
                await self.plugin.stop_processing()
        await self._feed.close()
        await super().close()
