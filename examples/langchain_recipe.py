"""LangChain: parts-mcp's tools as LangChain tools, through langchain-mcp-adapters.

    pip install langchain-mcp-adapters          # its own environment; parts-mcp lives in another
    python examples/langchain_recipe.py --command /path/to/parts-mcp --config token.toml
    python examples/langchain_recipe.py --url http://127.0.0.1:8765/mcp

In an agent: `create_agent(model, tools)` with the same `tools`. Here a script plays the model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _scripted import Target, confirmed, order, report, target
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.sessions import Connection
from langchain_mcp_adapters.tools import load_mcp_tools


def connection(where: Target) -> Connection:
    if where.url:
        return {"transport": "streamable_http", "url": where.url}
    return {"transport": "stdio", "command": where.command, "args": where.args}


async def call(tool: BaseTool, args: dict[str, Any]) -> dict[str, Any]:
    """Invoke as a model's tool call does: the ToolMessage's artifact carries the structured result."""
    message = await tool.ainvoke({"type": "tool_call", "id": "scripted", "name": tool.name, "args": args})
    return message.artifact["structured_content"]


async def main() -> None:
    where = target()
    client = MultiServerMCPClient({"parts": connection(where)})
    # One session for the whole flow (client.get_tools() would open one per call).
    async with client.session("parts") as session:
        tools = {tool.name: tool for tool in await load_mcp_tools(session)}
        found = await call(tools["lookup_parts"], {"query": ["MS21042L3"]})
        args = order(found, where.po)
        preview = await call(tools["place_order"], args)
        placed = await call(tools["place_order"], confirmed(args, preview))
    report("langchain", list(tools), preview, placed)


if __name__ == "__main__":
    asyncio.run(main())
