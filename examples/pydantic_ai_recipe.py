"""pydantic-ai: parts-mcp as an `MCPToolset`, driven by an Agent whose model is a script.

    pip install 'pydantic-ai-slim[mcp]'         # its own environment; parts-mcp lives in another
    python examples/pydantic_ai_recipe.py --command /path/to/parts-mcp --config token.toml
    python examples/pydantic_ai_recipe.py --url http://127.0.0.1:8765/mcp

With a real model: `Agent("openai:gpt-5", toolsets=[toolset])`. Here `FunctionModel` plays the model,
so the Agent's own tool loop calls the server: look up, preview, confirm.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from _scripted import Target, confirmed, order, report, target
from fastmcp.client import Client
from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel


def toolset(where: Target) -> MCPToolset[Any]:
    if where.url:
        return MCPToolset(where.url)
    return MCPToolset(Client(StdioTransport(command=where.command, args=where.args)))


class ScriptedModel:
    """Each turn reads the last tool result and makes the next call; records what it saw."""

    def __init__(self, po: str) -> None:
        self.po = po
        self.tools: list[str] = []
        self.results: list[dict[str, Any]] = []
        self.args: dict[str, Any] = {}

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.tools = [tool.name for tool in info.function_tools]
        returned = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        if not returned:
            return ModelResponse(parts=[ToolCallPart("lookup_parts", {"query": ["MS21042L3"]})])
        result: Any = returned[-1].content  # the tool's structured content
        self.results.append(json.loads(result) if isinstance(result, str) else result)
        if returned[-1].tool_name == "lookup_parts":
            self.args = order(self.results[-1], self.po)
            return ModelResponse(parts=[ToolCallPart("place_order", self.args)])
        if self.results[-1]["status"] == "confirmation_required":
            # A real assistant shows the preview and confirms only after the user says yes.
            return ModelResponse(parts=[ToolCallPart("place_order", confirmed(self.args, self.results[-1]))])
        return ModelResponse(parts=[TextPart(f"Order {self.results[-1]['status']}.")])


async def main() -> None:
    where = target()
    script = ScriptedModel(where.po)
    agent = Agent(FunctionModel(script), toolsets=[toolset(where)])
    async with agent:  # one MCP session for the whole run
        await agent.run("Order two MS21042L3 nuts from Skynet.")
    report("pydantic-ai", script.tools, script.results[1], script.results[2])


if __name__ == "__main__":
    asyncio.run(main())
