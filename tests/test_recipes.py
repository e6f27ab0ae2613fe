"""The agent-framework recipes in examples/, each run in its own environment against a real server.

LangChain's adapters pin mcp 1.x while parts-mcp needs 2.x, so each framework gets a venv of its own
(built with uv, cached under ~/.cache/parts-mcp-recipes/ by its pins), and its recipe runs as a
subprocess: over stdio it starts this project's `parts-mcp serve`, over HTTP it connects to one the
test started on loopback. The recipe's scripted model looks up, previews and confirms an order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BIN = Path(sys.executable).parent
# Versions checked against parts-mcp; langchain-mcp-adapters 0.3.2 brings mcp 1.30, the others mcp 2.3.
PINS = {
    "langchain": ["langchain-mcp-adapters==0.3.2", "langchain-core==1.8.3", "mcp==1.30.0"],
    "openai_agents": ["openai-agents==0.24.0", "mcp==2.3.0"],
    "pydantic_ai": ["pydantic-ai-slim[mcp]==2.78.0", "fastmcp-slim==4.2.3", "mcp==2.3.0"],
}
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "parts-mcp-recipes"
INSTALL_TIMEOUT, RUN_TIMEOUT = 600, 120
TOKEN_CONFIG = """\
[server]
sandbox = true
[guard]
confirmation = "token"
[store]
path = "{ledger}"
"""


def framework_python(framework: str) -> Path:
    """The framework's venv, built once per set of pins and Python version (a marker says it finished)."""
    pins = PINS[framework]
    key = hashlib.sha256(json.dumps([pins, sys.version]).encode()).hexdigest()[:12]
    venv = CACHE / f"{framework}-{key}"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        uv = BIN / "uv"
        assert uv.exists(), "uv is a test dependency: pip install -e '.[test]'"
        for step in (["venv", "-q", "--python", sys.executable, str(venv)], ["pip", "install", "-q", *pins]):
            subprocess.run(  # noqa: S603 - our own uv, pinned requirements
                [str(uv), *step],
                env={**os.environ, "VIRTUAL_ENV": str(venv)},
                check=True,
                timeout=INSTALL_TIMEOUT,
            )
        (venv / ".complete").touch()
    return venv / "bin" / "python"


def token_config(tmp_path: Path) -> Path:
    path = tmp_path / "token.toml"
    path.write_text(TOKEN_CONFIG.format(ledger=tmp_path / "ledger.sqlite3"))
    return path


@contextlib.contextmanager
def http_server(tmp_path: Path, log: Path) -> Iterator[str]:
    """`parts-mcp serve --transport http` on loopback, token mode; yields its /mcp URL once it is live."""
    port = free_port()
    command = [str(BIN / "parts-mcp"), "serve", "--transport", "http", "--port", str(port)]
    command += ["--config", str(token_config(tmp_path))]
    with log.open("w") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, cwd=tmp_path)  # noqa: S603
        try:
            deadline = time.monotonic() + 30
            while not live(port):  # bounded: the server is up within seconds
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            process.wait(10)


def live(port: int) -> bool:
    url = f"http://127.0.0.1:{port}/healthz"
    with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(url, timeout=1) as answer:
        return bool(answer.status == 200)
    return False


def run_recipe(framework: str, tmp_path: Path, *where: str) -> tuple[dict[str, Any], str]:
    """The recipe's JSON line and its stderr (where a stdio server's log lands)."""
    python = framework_python(framework)
    # The framework's environment only: nothing of this project's venv leaks in.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PARTS_MCP_CONFIG")}
    done = subprocess.run(  # noqa: S603 - the framework's venv, our example
        [str(python), str(EXAMPLES / f"{framework}_recipe.py"), "--po", f"RECIPE-{framework}", *where],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def check_placed(framework: str, result: dict[str, Any], server_log: str) -> None:
    assert {"lookup_parts", "place_order", "get_order"} <= set(result["tools"]), result
    assert result["first_status"] == "confirmation_required", result
    assert result["status"] == "placed", result
    assert result["po_number"] == f"RECIPE-{framework}", result
    assert str(result["order_id"]).startswith("skynet_order_"), result
    # The server's own word, from its operator log: one order, placed.
    assert server_log.count(f"order placed: skynet PO RECIPE-{framework}") == 1, server_log


@pytest.mark.parametrize("framework", sorted(PINS))
def test_recipe_over_stdio(framework: str, tmp_path: Path) -> None:
    where = ["--command", str(BIN / "parts-mcp"), "--config", str(token_config(tmp_path))]
    result, stderr = run_recipe(framework, tmp_path, *where)
    check_placed(framework, result, stderr)


@pytest.mark.parametrize("framework", sorted(PINS))
def test_recipe_over_streamable_http(framework: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with http_server(tmp_path, log) as url:
        result, _ = run_recipe(framework, tmp_path, "--url", url)
    check_placed(framework, result, log.read_text())
