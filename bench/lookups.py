"""Look-ups at the round-trip limit: one cross-vendor lookup_parts against the dependent-call minimum.

Every simulator answers each request after its own latency (Skynet 50 ms, Factory AI 100, Shopmonkey
150, Keyloop 200, PartsSource 250). Per vendor this prints the requests one look-up makes and their
sequential depth (the longest chain of requests each sent after the previous one was answered), and
the vendor's dependent-call minimum: the calls that must wait for an answer, times its latency. A
look-up cannot beat the slowest vendor's minimum; the figure is the look-up's time against it.

The first look-up also fetches OAuth tokens and Keyloop's brands (cached afterwards): it is shown
apart, and the p50 is over the look-ups after it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from mcp import Client

from parts_mcp.config import Settings
from parts_mcp.sandbox import Sandbox
from parts_mcp.server.app import build_server

LATENCY = {"skynet": 0.05, "factoryai": 0.10, "shopmonkey": 0.15, "keyloop": 0.20, "partssource": 0.25}
# One part number each vendor has: every vendor finds something, so each makes its whole chain of calls.
QUERIES = ["MS21042L3", "SKF-6204", "1K0698151A", "M3538A", "PF63E"]
# The calls that must wait for another's answer, by the vendors' documents: Skynet's catalog, Factory AI's
# parts and inventory, Shopmonkey's inventory page each answer in one call; Keyloop prices what its search
# found, PartsSource details what its catalog search found.
DEPENDENT_CALLS = {"skynet": 1, "factoryai": 1, "shopmonkey": 1, "keyloop": 2, "partssource": 2}


async def lookups(runs: int) -> None:
    sandbox = Sandbox()
    server = build_server(Settings(sandbox=True), sandbox=sandbox)
    simulators: dict[str, Any] = {key: getattr(sandbox, key) for key in LATENCY}
    for key, simulator in simulators.items():
        simulator.faults.latency = LATENCY[key]
    samples: list[float] = []
    async with Client(server) as client:
        for run in range(runs + 1):
            for simulator in simulators.values():
                simulator.faults.traffic.clear()
            start = time.perf_counter()
            found = await client.call_tool("lookup_parts", {"query": QUERIES})
            elapsed = (time.perf_counter() - start) * 1000
            assert not found.structured_content["vendor_errors"], found.content
            if run == 0:
                _traffic("first look-up (tokens, brands)", simulators, elapsed)
            else:
                samples.append(elapsed)
        _traffic("a later look-up", simulators, samples[-1])
    minimum = max(DEPENDENT_CALLS[key] * LATENCY[key] for key in LATENCY) * 1000
    p50 = statistics.median(samples)
    print(
        f"cross-vendor lookup_parts ({len(QUERIES)} part numbers, {runs} runs): p50 {p50:.0f} ms against a "
        f"dependent-call minimum of {minimum:.0f} ms = {p50 / minimum:.2f}x"
    )


def _traffic(title: str, simulators: dict[str, Any], elapsed: float) -> None:
    print(f"{title}: {elapsed:.0f} ms")
    for key, simulator in simulators.items():
        traffic = simulator.faults.traffic
        print(
            f"  {key:<12} {LATENCY[key] * 1000:4.0f} ms/call  requests {len(traffic.spans):2}  "
            f"sequential {traffic.depth}  (dependent minimum {DEPENDENT_CALLS[key]})  "
            f"at most {traffic.most_in_flight} in flight"
        )
