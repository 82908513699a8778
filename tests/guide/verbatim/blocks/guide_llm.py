from va_actors.core import llm

class MyLLM(llm.LLM):
    async def simple_response(self, text: str, processors=None, participant=None):
        """Generate response to text input."""
        messages = self._build_messages(text)

        # Include tools if function calling is supported
        tools = self._convert_tools_to_provider_format(self.get_available_functions())

        response = await self.provider.chat(messages, tools=tools)

        # Handle tool calls if present
        tool_calls = self._extract_tool_calls_from_response(response)
        if tool_calls:
            results = await self._execute_tools(tool_calls)
            # Continue conversation with tool results...

        return self._create_response_event(response)
