"""Cold start, a section of `python -m bench`; alone: `python -m bench.coldstart [--starts N]`.

spawn -> initialize -> tools/list over stdio for a production start (a config with every vendor kind,
no sandbox) beside a bare MCPServer with one tool, started in turn so both see the same machine load.
The figure is the ratio of the medians of that start. The client's shutdown (stdin closed until the
process has exited) is timed apart and printed beside it: it is no part of a start, but a client pays it.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

import parts_mcp
from parts_mcp.config import example

BARE_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
def hello(name: str) -> str:
    \"\"\"Say hello.\"\"\"
    return f"hello {name}"


server.run()
"""


async def spawn_and_list(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Milliseconds from spawn to the tools/list answer, and from there until the process has exited."""
    start = time.perf_counter()
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with Client(params) as client:
        await client.list_tools()
        listed = time.perf_counter()
    return (listed - start) * 1000, (time.perf_counter() - listed) * 1000


async def coldstart(n: int, workdir: Path) -> None:
    # An installed package has its bytecode (pip compiles it); a checkout run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module on every start.
    compileall.compile_dir(Path(parts_mcp.__file__).parent, quiet=1)
    config = workdir / "production.toml"
    config.write_text(example().replace('path = "parts-mcp.sqlite3"', f'path = "{workdir / "cold.sqlite3"}"'))
    env = {**os.environ, "PARTS_MCP_CONFIG": str(config)}
    env |= {name: "bench-secret-not-real-0000" for name in _referenced(config.read_text())}
    bare = workdir / "bare_server.py"
    bare.write_text(BARE_SERVER)
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for _ in range(n):  # interleaved, so both see the same machine load
        theirs.append(await spawn_and_list([sys.executable, str(bare)], env))
        ours.append(await spawn_and_list([sys.executable, "-m", "parts_mcp", "serve"], env))
    _report("cold start: bare MCPServer, 1 tool", theirs)
    _report("cold start: parts-mcp (production)", ours)
    started = [statistics.median(s for s, _ in runs) for runs in (ours, theirs)]
    whole = [statistics.median(s + e for s, e in runs) for runs in (ours, theirs)]
    print(f"cold start ratio (median parts-mcp / median bare, spawn -> tools/list): {started[0] / started[1]:.2f}")
    print(f"  with the client's shutdown counted in (spawn -> exited): {whole[0] / whole[1]:.2f}")


def _report(name: str, runs: list[tuple[float, float]]) -> None:
    starts = sorted(s for s, _ in runs)
    p95 = starts[min(len(starts) - 1, round(0.95 * (len(starts) - 1)))]
    print(
        f"{name:<34} n={len(runs):<5} p50={statistics.median(starts):7.2f} ms  p95={p95:7.2f} ms  "
        f"max={starts[-1]:7.2f} ms  (then shutdown p50={statistics.median(e for _, e in runs):6.2f} ms)"
    )


def _referenced(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart")
    parser.add_argument("--starts", type=int, default=10, help="cold starts of each server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(coldstart, args.starts, Path(tmp))


if __name__ == "__main__":
    main()
