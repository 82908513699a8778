"""The plugin categories: one table of base class, driver and what each publishes.

Everything that depends on a plugin's category reads this table: the plugin
loader (:func:`category_of`), ``va-launch check`` (the streams a consumer may
read, one video track), the actor host (:func:`driver_for`) and the
supervisor (which actors report turns, whose output is what the agent says).
The streams a category publishes are its driver's ``outputs``, so the table
cannot disagree with what the host actually sends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from va_actors.core.llm import LLM, Realtime, VideoLLM
from va_actors.core.node import Node
from va_actors.core.processors import AudioProcessor, VideoProcessor
from va_actors.core.stt import STT
from va_actors.core.tts import TTS
from va_actors.core.turn_detection import TurnDetector

if TYPE_CHECKING:
    from va_actors.runtime.drivers import Driver

__all__ = [
    "Category",
    "CategoryInfo",
    "category_of",
    "driver_for",
    "info",
    "outputs",
    "table",
]


class Category(enum.StrEnum):
    """What an actor's plugin is, which decides how the actor host drives it."""

    NODE = "node"
    STT = "stt"
    TURN = "turn"
    LLM = "llm"
    VLM = "vlm"
    REALTIME = "realtime"
    TTS = "tts"
    VIDEO_PROCESSOR = "video_processor"
    AUDIO_PROCESSOR = "audio_processor"


@dataclass(frozen=True)
class CategoryInfo:
    """One row of the table.

    Attributes:
        category: the category.
        base: the va_actors.core base class its plugins derive from.
        driver: the host's driver class (``va_actors.runtime.drivers``).
        agent: its output is what the agent says (LLM text, TTS and Realtime
            audio): consumers drop it once its epoch is over.
        one_video_track: its plugin sees all its video input as one track,
            so it may read one video stream only.
    """

    category: Category
    base: type
    driver: type[Driver]
    agent: bool = False
    one_video_track: bool = False

    @property
    def outputs(self) -> frozenset[str]:
        """Streams the host publishes for this category (empty for a node: undeclared)."""
        return frozenset(self.driver.outputs)

    @property
    def reports_turns(self) -> bool:
        """It publishes ``turn`` (user turn started/ended): the supervisor follows it."""
        return "turn" in self.outputs


@cache
def table() -> tuple[CategoryInfo, ...]:
    """Every category, most specific base first (a class matches the first row it derives from).

    Realtime derives from VideoLLM and VideoLLM from LLM, so they come in that
    order; a video processor that also takes audio is a video processor.
    """
    # Imported here: the drivers import the wire codec and video feeds, which
    # nothing needs until a table row is asked for.
    from va_actors.runtime import drivers

    return (
        CategoryInfo(Category.NODE, Node, drivers.NodeDriver),
        CategoryInfo(Category.REALTIME, Realtime, drivers.RealtimeDriver, agent=True,
                     one_video_track=True),
        CategoryInfo(Category.VLM, VideoLLM, drivers.VideoLLMDriver, agent=True,
                     one_video_track=True),
        CategoryInfo(Category.LLM, LLM, drivers.LLMDriver, agent=True),
        CategoryInfo(Category.STT, STT, drivers.STTDriver),
        CategoryInfo(Category.TURN, TurnDetector, drivers.TurnDriver),
        CategoryInfo(Category.TTS, TTS, drivers.TTSDriver, agent=True),
        CategoryInfo(Category.VIDEO_PROCESSOR, VideoProcessor, drivers.VideoProcessorDriver,
                     one_video_track=True),
        CategoryInfo(Category.AUDIO_PROCESSOR, AudioProcessor, drivers.AudioProcessorDriver),
    )


def info(category: Category | str) -> CategoryInfo:
    """The table row of ``category`` (ValueError for an unknown name)."""
    cat = Category(category)
    return next(row for row in table() if row.category is cat)


def outputs(category: Category | str) -> set[str]:
    """The streams the actor host publishes for a plugin of ``category``.

    A :attr:`Category.NODE` declares none here: a node publishes what it
    publishes (or what its class lists in ``Node.outputs``), so the empty set
    means "not declared" and callers must not validate a node's streams by it.
    """
    return set(info(category).outputs)


def category_of(cls: type) -> Category | None:
    """The category of plugin class ``cls``, or None if it derives from no core base."""
    for row in table():
        if issubclass(cls, row.base):
            return row.category
    return None


def driver_for(category: Category | str, cls: type) -> type[Driver]:
    """The driver class for a plugin class of ``category``.

    Raises:
        ValueError: ``cls`` is not a subclass of that category's base.
    """
    row = info(category)
    if not issubclass(cls, row.base):
        cat = row.category.value
        raise ValueError(f"{cls.__module__}.{cls.__qualname__} is not a {cat} plugin "
                         f"(it does not derive from the {cat} base class)")
    return row.driver
