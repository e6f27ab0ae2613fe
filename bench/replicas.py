"""Replicas on one PostgreSQL ledger: try them (`./dev replicas [N]`), or measure calls/s with 1, 2 and 3.

Everything is local and throw-away: PostgreSQL from the OS's server binaries (`bench.postgres`), the
vendor simulators (`parts-mcp sandbox`) and N `parts-mcp serve --transport http` processes, each on
its own loopback port, sharing the ledger, the ledger key and the token secret. Nothing is sticky:
a client may send each call to any replica.

    python -m bench.replicas --serve 2     # prints the replicas' URLs; Ctrl-C stops everything
    python -m bench.replicas               # calls/s through 1, 2 and 3 replicas
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client

from bench.postgres import free_port, running


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, numbers and booleans are spelled alike in TOML


def _wait_for(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    """Bounded poll until `url` answers 200."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited before serving")
        try:
            if httpx2.get(url, timeout=2).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start within 60 s")


def _config(workdir: Path, simulators: str, confirmation: str) -> Path:
    index = httpx2.get(simulators + "/").json()["vendors"]
    lines = [
        '[server]\ntransport = "http"\n',
        f'[guard]\nconfirmation = "{confirmation}"\ntoken_secret = "${{PARTS_MCP_TOKEN_SECRET}}"\n',
        "[approvals]\nopen_browser = false\n",
        '[store]\nurl = "${PARTS_MCP_DATABASE_URL}"\nkey = "${PARTS_MCP_LEDGER_KEY}"\n',
    ]
    for key, section in index.items():
        fields = {k: v for k, v in section.items() if k not in ("base_path", "admin_path")}
        lines.append(f"[vendors.{key}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in fields.items()))
    path = workdir / "parts-mcp.toml"
    path.write_text("\n".join(lines))
    return path


@contextmanager
def cluster(n: int, *, confirmation: str = "token", quiet: bool = True) -> Iterator[list[str]]:
    """PostgreSQL, the simulators and `n` replicas; yields the replicas' /mcp URLs."""
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parts-mcp-replicas-")))
        database = stack.enter_context(running())
        out = subprocess.DEVNULL if quiet else None

        def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=out)
            stack.callback(process.wait, 10)
            stack.callback(process.send_signal, signal.SIGTERM)
            return process

        port = free_port()
        simulators = f"http://127.0.0.1:{port}"
        sandbox = start([sys.executable, "-m", "parts_mcp", "sandbox", "--port", str(port)])
        _wait_for(simulators + "/", sandbox, "the vendor simulators")
        config = _config(workdir, simulators, confirmation)
        env = {
            **os.environ,
            "PARTS_MCP_DATABASE_URL": database.fresh_database(),
            "PARTS_MCP_LEDGER_KEY": secrets.token_urlsafe(32),
            "PARTS_MCP_TOKEN_SECRET": secrets.token_urlsafe(32),
        }
        urls: list[str] = []
        for _ in range(n):
            port = free_port()
            replica = start(
                [sys.executable, "-m", "parts_mcp", "serve", "--config", str(config), "--port", str(port)], env
            )
            _wait_for(f"http://127.0.0.1:{port}/readyz", replica, "a replica")
            urls.append(f"http://127.0.0.1:{port}/mcp")
        yield urls


async def _order(url: str, po_number: str) -> int:
    """Look up, preview and confirm one Skynet order through `url`: the tool calls it took."""
    async with Client(url) as client:
        found = await client.call_tool("lookup_parts", {"query": ["MS21042L3"], "vendors": ["skynet"]})
        part_id = found.structured_content["parts"][0]["part_id"]  # type: ignore[index]
        args = {"vendor": "skynet", "po_number": po_number, "items": [{"part_id": part_id, "quantity": 1}]}
        result = await client.call_tool("place_order", args)
        shown = result.structured_content or {}
        assert "preview" in shown, result.content
        total = shown["preview"]["total"]
        confirm = {
            "confirmation_token": shown["confirmation_token"],
            "confirmed_total": f"{total['amount']} {total['currency']}",
        }
        placed = (await client.call_tool("place_order", {**args, **confirm})).structured_content or {}
        assert placed.get("status") == "placed", placed
    return 3


async def _throughput(urls: list[str], orders: int, concurrency: int) -> float:
    calls = 0
    next_order = iter(range(orders))

    async def worker(w: int) -> None:
        nonlocal calls
        for i in next_order:
            made = await _order(urls[(w + i) % len(urls)], f"PO-BENCH-{i:05d}")
            calls += made  # after the await: `calls += await ...` would read `calls` before it

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for w in range(concurrency):
            group.start_soon(worker, w)
    return calls / (time.perf_counter() - began)


def measure(orders: int = 60, concurrency: int = 12) -> None:
    print(f"replicas: {orders} orders (lookup + preview + confirm each), {concurrency} clients, round-robin")
    for n in (1, 2, 3):
        with cluster(n) as urls:
            rate = anyio.run(_throughput, urls, orders, concurrency)
        print(f"  {n} replica{'s' if n > 1 else ' '}: {rate:7.1f} tool calls/s")
    print(f"  (this machine has {os.cpu_count()} cores; the simulators, the client and PostgreSQL share them)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, metavar="N", help="start N replicas and keep them running")
    parser.add_argument("--confirmation", default="token", help="guard.confirmation of the replicas (--serve)")
    args = parser.parse_args()
    if args.serve is None:
        measure()
        return
    # SIGTERM (a supervisor, `timeout`) stops everything as Ctrl-C does: the replicas, the simulators, the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with cluster(args.serve, confirmation=args.confirmation, quiet=False) as urls:
        print("replicas sharing one PostgreSQL ledger (send any call to any of them):")
        for url in urls:
            print(f"  {url}")
        print("try: npx @modelcontextprotocol/inspector --cli " + urls[0] + " --transport http --method tools/list")
        print("Ctrl-C stops the replicas, the simulators and the database.")
        with suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
