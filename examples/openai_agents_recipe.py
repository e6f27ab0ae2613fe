"""openai-agents: parts-mcp as an Agents SDK MCP server (`Agent(mcp_servers=[server])`).

    pip install openai-agents                    # its own environment; parts-mcp lives in another
    python examples/openai_agents_recipe.py --command /path/to/parts-mcp --config token.toml
    python examples/openai_agents_recipe.py --url http://127.0.0.1:8765/mcp

An Agent given `mcp_servers=[server]` lists and calls these tools itself; here a script plays the
model and calls them through the same server object.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _scripted import Target, confirmed, order, report, target
from agents.mcp import MCPServerStdio, MCPServerStreamableHttp


def server(where: Target) -> MCPServerStdio | MCPServerStreamableHttp:
    if where.url:
        return MCPServerStreamableHttp(params={"url": where.url}, name="parts-mcp")
    return MCPServerStdio(params={"command": where.command, "args": where.args}, name="parts-mcp")


async def call(parts: MCPServerStdio | MCPServerStreamableHttp, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await parts.call_tool(name, args)
    # mcp 2.x spells it structured_content, 1.x structuredContent.
    structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    assert structured is not None, result
    return structured


async def main() -> None:
    where = target()
    async with server(where) as parts:
        tools = [tool.name for tool in await parts.list_tools()]
        found = await call(parts, "lookup_parts", {"query": ["MS21042L3"]})
        args = order(found, where.po)
        preview = await call(parts, "place_order", args)
        placed = await call(parts, "place_order", confirmed(args, preview))
    report("openai-agents", tools, preview, placed)


if __name__ == "__main__":
    asyncio.run(main())
