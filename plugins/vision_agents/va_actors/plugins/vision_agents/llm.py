"""A Vision Agents LLM (``simple_response`` yielding deltas and a final) as our LLM.

Our :class:`~va_actors.core.llm.LLM` keeps the conversation (and truncates an
interrupted reply to what the user heard); before each reply the Vision
Agents instance is given a fresh ``InMemoryConversation`` holding that
history, and is called with a participant, so it does not add the user's
message a second time. Its deltas and final become ours; ``interrupt`` and
``close`` reach it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from va_actors.core import llm
from va_actors.core.edge import Participant
from va_actors.core.llm import LLMResponseDelta, LLMResponseFinal
from va_actors.plugins.vision_agents.convert import to_va_participant
from va_actors.plugins.vision_agents.warm import warm_up
from vision_agents.core.agents.conversation import InMemoryConversation
from vision_agents.core.agents.conversation import Message as VAMessage
from vision_agents.core.llm.llm import LLMResponseDelta as VADelta
from vision_agents.core.llm.llm import LLMResponseFinal as VAFinal

__all__ = ["VisionAgentsLLM"]


class VisionAgentsLLM(llm.LLM):
    """Runs the Vision Agents LLM class ``va_class`` (set by the adapter).

    Args:
        instructions: the system prompt (``@file.md`` references expanded).
        **params: the Vision Agents class's own constructor parameters.
    """

    va_class: ClassVar[type]

    def __init__(self, *, instructions: str | None = None, **params: Any) -> None:
        self.va: Any = self.va_class(**params)
        super().__init__(provider_name=getattr(self.va, "provider_name", None)
                         or self.va_class.__name__, instructions=instructions)

    def set_instructions(self, instructions: str, base_dir: str | Path | None = None, *,
                         expand_references: bool = True) -> None:
        """Ours, then the Vision Agents instance gets the expanded text."""
        super().set_instructions(instructions, base_dir, expand_references=expand_references)
        self.va.set_instructions(self.instructions)

    async def start(self) -> None:
        """Warm the plugin up (if it is ``Warmable``) and start it."""
        await warm_up(self.va)
        await self.va.start()

    async def simple_response(self, text: str, participant: Participant | None = None
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        """The Vision Agents plugin's reply to ``text``, as our deltas and final."""
        history = [VAMessage(content=m["content"], role=m["role"], user_id=m.get("name"))
                   for m in self.conversation.to_chat_messages()
                   if isinstance(m.get("content"), str)]
        self.va.set_conversation(InMemoryConversation(self.instructions, history))
        async for item in self.va.simple_response(text, to_va_participant(participant)):
            if isinstance(item, VADelta):
                if item.delta:
                    yield LLMResponseDelta(delta=item.delta, content_index=item.content_index,
                                           output_index=item.output_index,
                                           time_to_first_token_ms=item.time_to_first_token_ms)
            elif isinstance(item, VAFinal):
                yield LLMResponseFinal(text=item.text, model=item.model,
                                       latency_ms=item.latency_ms,
                                       time_to_first_token_ms=item.time_to_first_token_ms,
                                       input_tokens=item.input_tokens,
                                       output_tokens=item.output_tokens,
                                       total_tokens=item.total_tokens)

    async def interrupt(self, epoch: int | None = None) -> None:
        """Barge-in: ours cancels the reply (the base runs first), then theirs."""
        await self.va.interrupt()

    async def close(self) -> None:
        """Stop the reply in flight and close the plugin's client."""
        await super().close()
        await self.va.close()
