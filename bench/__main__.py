"""Benchmarks: `./dev bench` (or `python -m bench`). Figures, not pass/fail tests.

- overhead: server time per tool call through the in-memory SDK Client on the embedded sandbox
  (vendor simulators in-process, so this is parts-mcp + SDK + simulator, no network).
- fanout: lookup_parts across every sandbox vendor while one vendor is slow: total time should be
  about the slowest vendor's, not the sum.
- lookups: one cross-vendor lookup_parts against the slowest vendor's dependent-call minimum (bench/lookups.py).
- coldstart: spawn -> initialize -> tools/list over stdio for a production start (a config with every
  vendor kind, no sandbox) beside a bare MCPServer with one tool, side by side; the ratio is the figure
  (bench/coldstart.py; alone: `python -m bench.coldstart`).
- listing: list_purchase_orders pages at 1k / 10k / 100k ledger orders, time and peak memory
  (bench/listing.py; alone: `python -m bench.listing`).
- tokens: what a model pays to read tools/list and typical results (characters / 4, compact JSON as
  the SDK sends it), the text a model reads beside the structured content a client may also get.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from bench.coldstart import coldstart
from bench.lookups import lookups
from parts_mcp.config import GuardSettings, Settings
from parts_mcp.orders.sqlite_ledger import SQLiteLedger
from parts_mcp.sandbox import Sandbox
from parts_mcp.server.app import build_server


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(n: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name:<34} n={len(samples):<5} p50={statistics.median(samples):7.2f} ms  "
        f"p95={percentile(samples, 0.95):7.2f} ms  max={max(samples):7.2f} ms"
    )


async def overhead(n: int, workdir: Path) -> None:
    sandbox = Sandbox()
    ledger = SQLiteLedger(workdir / "bench.sqlite3")
    server = build_server(
        Settings(sandbox=True, guard=GuardSettings(confirmation="token")), sandbox=sandbox, ledger=ledger
    )
    async with Client(server) as client:
        found = await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})
        part_id = next(p["part_id"] for p in found.structured_content["parts"] if p["part_number"] == "MS21042L3")
        report("list_vendors", await timed(n, lambda i: client.call_tool("list_vendors", {})))
        report(
            "lookup_parts (skynet, 1 part)",
            await timed(n, lambda i: client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})),
        )

        async def place(i: int) -> None:
            args = {"vendor": "skynet", "po_number": f"BENCH-{i:05d}", "items": [{"part_id": part_id, "quantity": 1}]}
            preview = (await client.call_tool("place_order", args)).structured_content
            total = preview["preview"]["total"]
            placed = await client.call_tool(
                "place_order",
                {
                    **args,
                    "confirmation_token": preview["confirmation_token"],
                    "confirmed_total": f"{total['amount']} {total['currency']}",
                },
            )
            assert placed.structured_content["status"] == "placed", placed.content

        sandbox.skynet.set_stock("MS21042L3", 10**9)
        report("place_order (preview + confirm)", await timed(n, place))
        report(
            "place_order (same PO, replayed)",
            await timed(
                n,
                lambda i: client.call_tool(
                    "place_order",
                    {"vendor": "skynet", "po_number": f"BENCH-{i:05d}", "items": [{"part_id": part_id, "quantity": 1}]},
                ),
            ),
        )
        report(
            "list_purchase_orders (limit 20)",
            await timed(n, lambda i: client.call_tool("list_purchase_orders", {"limit": 20})),
        )
    ledger.close()


def tokens_of(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return len(text) // 4


def report_result(name: str, result: Any) -> None:
    text = tokens_of("".join(getattr(block, "text", "") for block in result.content))
    structured = tokens_of(result.structured_content or {})
    print(f"{name:<34} text {text:6} tokens   structured {structured:6} tokens   total {text + structured:6}")


async def tokens(workdir: Path) -> None:
    server = build_server(
        Settings(sandbox=True, guard=GuardSettings(confirmation="token")),
        ledger=SQLiteLedger(workdir / "tokens.sqlite3"),
    )
    async with Client(server) as client:
        listed = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in (await client.list_tools()).tools
        ]
        print(f"{'tools/list':<34} {tokens_of(listed):6} tokens ({len(listed)} tools)")
        for tool in listed:
            print(f"  {tool['name']:<32} {tokens_of(tool):6} tokens")
        five = ["MS21042L3", "SKF-6204", "1K0698151A", "M3538A", "PF63E"]
        report_result("lookup_parts (5 part numbers)", await client.call_tool("lookup_parts", {"query": five}))
        found = await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})
        part_id = found.structured_content["parts"][0]["part_id"]
        args = {"vendor": "skynet", "po_number": "BENCH-TOK-1", "items": [{"part_id": part_id, "quantity": 3}]}
        report_result("place_order preview (1 line)", await client.call_tool("place_order", args))
        report_result("list_purchase_orders (20 orders)", await client.call_tool("list_purchase_orders", {"limit": 20}))
        report_result("list_vendors", await client.call_tool("list_vendors", {}))


async def fanout(slow: float, workdir: Path) -> None:
    sandbox = Sandbox()
    server = build_server(Settings(sandbox=True), sandbox=sandbox, ledger=SQLiteLedger(workdir / "fan.sqlite3"))
    vendors = list(sandbox.vendors())
    simulators = {key: getattr(sandbox, key) for key in vendors}
    async with Client(server) as client:
        for key, simulator in simulators.items():
            simulator.faults.latency = slow
            start = time.perf_counter()
            result = await client.call_tool("lookup_parts", {"query": ["MS21042L3", "SKF-6204", "filter"]})
            elapsed = time.perf_counter() - start
            simulator.faults.latency = 0.0
            found = {p["vendor"] for p in result.structured_content["parts"]}
            print(
                f"fan-out over {len(vendors)} vendors, {key:<11} +{slow:.2f}s per vendor call: "
                f"total {elapsed:.3f}s; parts from {sorted(found)}"
            )
        for simulator in simulators.values():
            simulator.faults.latency = slow
        start = time.perf_counter()
        await client.call_tool("lookup_parts", {"query": ["MS21042L3"]})
        elapsed = time.perf_counter() - start
        print(
            f"fan-out with every vendor at {slow:.2f}s: total {elapsed:.3f}s "
            f"(sequential would be >= {slow * len(vendors):.2f}s)"
        )


def redaction(n: int) -> None:
    """The secret finder on a vendor answer (it reads every one): honest, then echoing a key in every spelling."""
    from parts_mcp.redact import finder
    from parts_mcp.sandbox._faults import credential_echo

    keys = [v.settings.get("api_key") or v.settings["client_secret"] for v in Sandbox().vendors().values()]
    found = finder(keys)
    row = {"title": "Nut, Self-Locking, 10-32 UNJF", "status": "in_stock"}
    rows = [{"partNumber": f"MS2104{i}", **row} for i in range(100)]
    honest = json.dumps({"parts": rows})
    echoing = json.dumps({"parts": rows, "message": credential_echo(keys[0])})
    for name, body in (("honest", honest), ("echoing a key", echoing)):
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            found.redact(body)
            samples.append((time.perf_counter() - start) * 1000)
        report(f"redact {len(body) // 1024} KB answer, {name}", samples)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("httpx2", "httpcore", "httpcore2", "mcp", "stamina"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--n", type=int, default=200, help="calls per measured tool")
    parser.add_argument("--slow", type=float, default=0.5, help="latency given to the slow vendor(s), seconds")
    parser.add_argument("--starts", type=int, default=10, help="cold starts of each server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(coldstart, args.starts, Path(tmp))
        anyio.run(tokens, Path(tmp))
        anyio.run(overhead, args.n, Path(tmp))
        anyio.run(fanout, args.slow, Path(tmp))
        anyio.run(lookups, 10)
    redaction(args.n)
    from bench import listing  # listing at 1k / 10k / 100k ledger orders, a subprocess per size

    listing.main([])


if __name__ == "__main__":
    main()
