"""Acme chat LLM: streaming completions with function calling."""

# ruff: noqa: UP006, UP035, UP045 - kept in the guide's typing style (Optional, List, Dict)

import json
import logging
from typing import Any, AsyncIterator, Dict, List, Optional

import aiohttp

from va_actors.core import llm
from va_actors.core.edge.types import Participant
from va_actors.core.llm.events import LLMResponseChunkEvent, LLMResponseCompletedEvent
from va_actors.core.llm.function_registry import ToolSchema
from va_actors.core.llm.llm import LLMResponseEvent, NormalizedToolCallItem
from va_actors.core.processors import Processor

from ._client import DEFAULT_BASE_URL, api_key_from_env, auth_headers

logger = logging.getLogger(__name__)


async def iter_sse(response: aiohttp.ClientResponse) -> AsyncIterator[Dict[str, Any]]:
    """The JSON payloads of a server-sent-events body, until ``[DONE]``."""
    async for raw in response.content:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        if data == "[DONE]":
            return
        yield json.loads(data)


class LLM(llm.LLM):
    """Acme's chat model."""

    def __init__(
        self,
        model: str = "acme-1",
        api_key: Optional[str] = None,
        base_url: str = DEFAULT_BASE_URL,
        client: Optional[aiohttp.ClientSession] = None,
    ):
        super().__init__()
        self.model = model
        self.api_key = api_key_from_env(api_key)
        self.base_url = base_url
        self._client = client
        self._own_client = client is None

    async def simple_response(
        self,
        text: str,
        processors: Optional[List[Processor]] = None,
        participant: Optional[Participant] = None,
    ) -> LLMResponseEvent:
        messages = self._build_messages(text)
        tools = self._convert_tools_to_provider_format(self.get_available_functions())
        response = await self._create_completion(messages, tools)

        rounds = 0
        tool_calls = self._extract_tool_calls_from_response(response)
        while tool_calls and rounds < self.max_tool_rounds:
            rounds += 1
            results = await self._execute_tools(tool_calls)
            messages.extend(
                self._create_tool_result_message(
                    [tc for tc, _, _ in results], [result for _, result, _ in results]
                )
            )
            response = await self._create_completion(messages, tools)
            tool_calls = self._extract_tool_calls_from_response(response)

        total_text = response["choices"][0]["message"].get("content") or ""
        self.events.send(
            LLMResponseCompletedEvent(plugin_name="acme", original=response, text=total_text)
        )
        return LLMResponseEvent(response, total_text)

    async def _create_completion(
        self, messages: List[Dict[str, Any]], tools: List[Dict[str, Any]]
    ) -> Dict[str, Any]:
        """Stream one completion, emitting chunk events; returns it assembled."""
        if self._client is None:
            self._client = aiohttp.ClientSession()
        payload: Dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if tools:
            payload["tools"] = tools
        content = ""
        calls: Dict[int, Dict[str, Any]] = {}
        finish_reason = None
        sequence = 0
        async with self._client.post(
            f"{self.base_url}/v1/chat/completions",
            json=payload,
            headers=auth_headers(self.api_key),
        ) as resp:
            resp.raise_for_status()
            async for chunk in iter_sse(resp):
                choice = chunk["choices"][0]
                delta = choice.get("delta", {})
                finish_reason = choice.get("finish_reason") or finish_reason
                if delta.get("content"):
                    content += delta["content"]
                    self.events.send(
                        LLMResponseChunkEvent(
                            plugin_name="acme",
                            content_index=0,
                            item_id=chunk["id"],
                            output_index=0,
                            sequence_number=sequence,
                            delta=delta["content"],
                        )
                    )
                    sequence += 1
                for part in delta.get("tool_calls") or []:
                    call = calls.setdefault(
                        part["index"], {"id": None, "type": "function",
                                        "function": {"name": "", "arguments": ""}}
                    )
                    call["id"] = part.get("id") or call["id"]
                    function = part.get("function", {})
                    call["function"]["name"] += function.get("name", "")
                    call["function"]["arguments"] += function.get("arguments", "")
        message: Dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        return {"model": self.model, "choices": [{"message": message,
                                                  "finish_reason": finish_reason}]}

    def _convert_tools_to_provider_format(self, tools: List[ToolSchema]) -> List[Dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": tool.get("description", ""),
                    "parameters": tool["parameters_schema"],
                },
            }
            for tool in tools
        ]

    def _extract_tool_calls_from_response(self, response: Any) -> List[NormalizedToolCallItem]:
        calls: List[NormalizedToolCallItem] = []
        for call in response["choices"][0]["message"].get("tool_calls") or []:
            calls.append(
                {
                    "type": "tool_call",
                    "id": call["id"],
                    "name": call["function"]["name"],
                    "arguments_json": json.loads(call["function"]["arguments"] or "{}"),
                }
            )
        return calls

    def _create_tool_result_message(
        self, tool_calls: List[NormalizedToolCallItem], results: List[Any]
    ) -> List[Dict[str, Any]]:
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": tc["id"],
                    "type": "function",
                    "function": {"name": tc["name"],
                                 "arguments": json.dumps(tc["arguments_json"])},
                }
                for tc in tool_calls
            ],
        }
        tool_messages = [
            {"role": "tool", "tool_call_id": tc["id"],
             "content": self._sanitize_tool_output(result)}
            for tc, result in zip(tool_calls, results, strict=True)
        ]
        return [assistant, *tool_messages]

    async def close(self) -> None:
        await super().close()
        if self._own_client and self._client is not None:
            await self._client.close()
