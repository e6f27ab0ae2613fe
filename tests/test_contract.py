"""The public tool contract (ARCHITECTURE.md "The four tools"), snapshotted and checked as a whole.

A changed schema or description fails here until the snapshot is regenerated on purpose:
`UPDATE_SNAPSHOTS=1 pytest tests/test_contract.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import Tool

from conftest import World

pytestmark = pytest.mark.asyncio
SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"
CONTRACT = {
    "lookup_parts": ({"query"}, {"query", "vendors"}),
    "place_order": (
        {"vendor", "po_number", "items"},
        {"vendor", "po_number", "items", "notes", "options", "confirmation_token", "confirmed_total"},
    ),
    "get_order": ({"vendor", "order_id"}, {"vendor", "order_id"}),
    "list_purchase_orders": (
        set(),
        {"vendor", "status", "po_number", "created_after", "created_before", "limit", "cursor"},
    ),
    "list_vendors": (set(), set()),
}


async def tools(tmp_path: Path) -> list[Tool]:
    async with Client(World(tmp_path).server) as client:
        return (await client.list_tools()).tools


def dump(tool: Tool) -> dict[str, Any]:
    return tool.model_dump(mode="json", by_alias=True, exclude_none=True)


async def test_tools_list_matches_the_snapshot(tmp_path: Path) -> None:
    listed = [dump(t) for t in await tools(tmp_path)]
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(listed, indent=2, sort_keys=True) + "\n")
    assert listed == json.loads(SNAPSHOT.read_text())


async def test_tool_names_and_arguments_are_exactly_the_contract(tmp_path: Path) -> None:
    listed = {t.name: t for t in await tools(tmp_path)}
    assert set(listed) == set(CONTRACT)
    for name, (required, allowed) in CONTRACT.items():
        schema = listed[name].input_schema
        assert set(schema.get("required", [])) == required, name
        assert set(schema.get("properties", {})) == allowed, name


async def test_every_tool_declares_all_hints_and_a_title_and_strict_friendly_inputs(tmp_path: Path) -> None:
    """Output schemas are optional in the spec and cost every conversation tokens: results carry their
    facts in text (tests/test_text_only.py), so none is declared. Input schemas convert cleanly to
    strict function-calling schemas: no $ref, every object closed and declared."""
    for tool in await tools(tmp_path):
        hints = tool.annotations
        assert hints is not None, tool.name
        assert None not in (
            hints.read_only_hint,
            hints.destructive_hint,
            hints.idempotent_hint,
            hints.open_world_hint,
        ), tool.name
        assert tool.output_schema is None and tool.title, tool.name
        assert "$ref" not in json.dumps(tool.input_schema) and "$defs" not in tool.input_schema, tool.name
        for node in _objects(tool.input_schema):
            assert node.get("additionalProperties") is False and "properties" in node, (tool.name, node)
        assert tool.description and len(tool.description) > 40, tool.name
        assert not {"anyOf", "oneOf", "allOf"} & set(tool.input_schema), tool.name
        if not hints.read_only_hint:
            assert hints.destructive_hint and not hints.idempotent_hint, tool.name


async def test_tool_definitions_stay_within_the_token_budget(tmp_path: Path) -> None:
    """Every client pays for tools/list in tokens on each turn: growth must be a decision, not drift.

    About 4 characters a token for compact JSON, as the SDK sends it. Issue 7 set the ceiling at 2,000.
    """
    size = len(json.dumps([dump(t) for t in await tools(tmp_path)], separators=(",", ":")))
    assert size / 4 <= 2000, f"tools/list is {size} characters, about {size // 4} tokens"


def _objects(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, list):
        return [o for item in schema for o in _objects(item)]  # type: ignore[misc]
    if not isinstance(schema, dict):
        return []
    own = [schema] if schema.get("type") == "object" else []
    return own + [o for value in schema.values() for o in _objects(value)]  # type: ignore[misc]


def _strict_arguments(schema: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """What a strict function-calling model sends: every property present, null for "not given" (nested too)."""
    arguments: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        value = given.get(name)
        if isinstance(value, dict) and "properties" in prop:
            value = _strict_arguments(prop, value)  # type: ignore[arg-type]
        assert value is not None or "null" in prop.get("type", []), f"{name} cannot be null in a strict schema"
        arguments[name] = value
    return arguments


async def test_a_strict_function_calling_model_can_leave_every_optional_argument_null(tmp_path: Path) -> None:
    """openai-agents and LangChain's strict mode make every property required: null must mean "not given"."""
    async with Client(World(tmp_path, confirmation="token").server) as client:
        schemas = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        found = await client.call_tool(
            "lookup_parts", _strict_arguments(schemas["lookup_parts"], {"query": ["MS21042L3"]})
        )
        part_id = (found.structured_content or {})["parts"][0]["part_id"]
        order = {"vendor": "skynet", "po_number": "PO-STRICT-1", "items": [{"part_id": part_id, "quantity": 1}]}
        preview = await client.call_tool(
            "place_order", _strict_arguments(schemas["place_order"], {**order, "options": {}})
        )
        listed = await client.call_tool(
            "list_purchase_orders", _strict_arguments(schemas["list_purchase_orders"], {"limit": 5})
        )
    assert not found.is_error and not listed.is_error
    assert not preview.is_error, preview.content
    assert (preview.structured_content or {})["status"] == "confirmation_required"
