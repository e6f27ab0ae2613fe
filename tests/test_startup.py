"""A production start (a config with real vendors) loads no simulator code, and no vendor's answer models
until that vendor answers (they are a third of our share of a cold start)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from parts_mcp.config import example
from parts_mcp.vendors import KINDS

PROBE = """
import sys, anyio
from parts_mcp.config import load
from parts_mcp.server.app import build_server

server = build_server(load(sys.argv[1]))

async def start():
    async with server.settings.lifespan(server):
        await server.list_tools()

anyio.run(start)
print(sorted(m for m in sys.modules if m.startswith(("parts_mcp.sandbox", "parts_mcp.vendors.wire."))))
print(sorted(kind for kind in sys.argv[2:] if f"parts_mcp.vendors.{kind}" in sys.modules))
"""


def test_a_production_start_imports_no_simulator_and_no_answer_models(tmp_path: Path) -> None:
    config = tmp_path / "production.toml"
    config.write_text(example().replace('path = "parts-mcp.sqlite3"', f'path = "{tmp_path / "ledger.sqlite3"}"'))
    env = {**os.environ} | {name: "not-a-real-secret-000" for name in re.findall(r"\$\{(\w+)\}", config.read_text())}
    done = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-c", PROBE, str(config), *KINDS], capture_output=True, env=env, timeout=60, check=True
    )
    not_loaded, vendors = done.stdout.decode().splitlines()
    assert not_loaded == "[]"
    assert vendors == str(sorted(KINDS))  # every vendor is configured and its client module loaded
