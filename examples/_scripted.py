"""What the three recipes share: where the server is, and the model's side of the order, scripted.

A recipe stands in for a model: it looks a part up, asks to place the order, gets a preview with a
confirmation token (the server's `[guard] confirmation = "token"`), and confirms the exact total —
which a real assistant does only after the user said yes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

PART, VENDOR, QUANTITY = "MS21042L3", "skynet", 2


@dataclass
class Target:
    """A running server (`url`, streamable HTTP) or the command that starts one on stdio."""

    url: str | None
    command: str
    args: list[str]
    po: str


def target() -> Target:
    parser = argparse.ArgumentParser(description="Drive parts-mcp through an agent framework's MCP adapter.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="streamable HTTP endpoint, e.g. http://127.0.0.1:8765/mcp")
    where.add_argument("--command", default="parts-mcp", help="stdio: the parts-mcp executable (default: on PATH)")
    parser.add_argument("--config", help="stdio: the server's TOML config (token confirmation for this flow)")
    parser.add_argument("--po", default="RECIPE-1", help="purchase order number")
    options = parser.parse_args()
    serve = ["serve", *(["--config", options.config] if options.config else [])]
    return Target(options.url, options.command, serve, options.po)


def order(found: dict[str, Any], po: str) -> dict[str, Any]:
    """place_order's arguments for the part the look-up found."""
    part = next(p for p in found["parts"] if p["part_number"] == PART and p["vendor"] == VENDOR)
    return {"vendor": VENDOR, "po_number": po, "items": [{"part_id": part["part_id"], "quantity": QUANTITY}]}


def confirmed(args: dict[str, Any], preview: dict[str, Any]) -> dict[str, Any]:
    """The same call again, with the token and the total the user approved."""
    assert preview["status"] == "confirmation_required", preview
    total = preview["preview"]["total"]
    return {
        **args,
        "confirmation_token": preview["confirmation_token"],
        "confirmed_total": f"{total['amount']} {total['currency']}",
    }


def report(framework: str, tools: list[str], preview: dict[str, Any], placed: dict[str, Any]) -> None:
    """One JSON line on stdout: what the test (or you) checks."""
    order = placed.get("order", {})
    print(
        json.dumps(
            {
                "framework": framework,
                "tools": sorted(tools),
                "first_status": preview["status"],
                "status": placed["status"],
                "order_id": order.get("order_id"),
                "po_number": order.get("po_number"),
            }
        )
    )
