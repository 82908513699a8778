"""Tool-call types under the module path Vision Agents plugins import them from."""

from va_actors.core.llm.function_registry import ToolSchema
from va_actors.core.llm.tool_calls import NormalizedToolCallItem

__all__ = ["NormalizedToolCallItem", "ToolSchema"]
