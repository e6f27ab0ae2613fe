"""The built wheel runs the way MCP clients are told to start it, from outside this checkout.

The wheel is built once, installed with pip into a new virtual environment in a temporary folder
(its dependencies from the index, as a user's would be), and run from another temporary folder, so
nothing of the checkout can be imported by accident: `parts-mcp config example`, and a stdio
handshake (discover or initialize, then tools/list) both from that environment and through
`uvx --from WHEEL` (uv is a test dependency). server.json and the package metadata are checked
against the package.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from parts_mcp import __version__
from parts_mcp.config import Settings, example
from parts_mcp.server.app import build_server

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Installing resolves about forty dependencies; pip's cache and the index make it seconds, not minutes.
INSTALL_TIMEOUT = 300


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path  # the working directory of every run: not the checkout
    env: dict[str, str]

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "parts-mcp"

    def uvx(self, *args: str) -> list[str]:
        uvx = Path(sys.executable).parent / "uvx"
        assert uvx.exists(), "uv is a test dependency: pip install -e '.[test]'"
        return [str(uvx), "--from", str(self.wheel), "parts-mcp", *args]


def _clean_env() -> dict[str, str]:
    """The user's environment minus anything that would point a run back at the checkout or a config."""
    dropped = {"PARTS_MCP_CONFIG", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["UV_PYTHON_DOWNLOADS"] = "never"  # use a Python that is here; never fetch one mid-test
    return env


def _run(args: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter, venv and uvx
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("install")
    env, elsewhere = _clean_env(), base / "elsewhere"
    elsewhere.mkdir()
    dist, venv = base / "dist", base / "venv"
    _run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--quiet", "--wheel-dir", dist], elsewhere, env)
    [wheel] = dist.glob("parts_mcp-*.whl")
    # No pip of its own (ensurepip costs seconds): this pip installs into it, as pipx does with its shared pip.
    _run([sys.executable, "-m", "venv", "--without-pip", venv], elsewhere, env)
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", wheel]
    _run(pip, elsewhere, env, timeout=INSTALL_TIMEOUT)
    return Installed(wheel, venv, elsewhere, env)


def test_the_wheel_carries_the_licence_the_config_header_and_the_metadata(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"parts_mcp-{__version__}.dist-info/METADATA").decode()
    assert "parts_mcp/config_header.toml" in names
    assert f"parts_mcp-{__version__}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    for label in ("Homepage", "Repository", "Issues", "Changelog"):
        assert f"Project-URL: {label}, https://" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata and "Keywords: " in metadata


def test_the_installed_command_runs_from_its_own_environment(installed: Installed) -> None:
    python = installed.venv / "bin" / "python"
    where = _run([python, "-c", "import parts_mcp; print(parts_mcp.__file__)"], installed.elsewhere, installed.env)
    assert Path(where.strip()).is_relative_to(installed.venv)  # not the checkout
    version = _run([installed.command, "--version"], installed.elsewhere, installed.env)
    assert version.strip() == f"parts-mcp {PYPROJECT['version']}"
    assert _run([installed.command, "config", "example"], installed.elsewhere, installed.env) == example()


def test_uvx_runs_the_wheel(installed: Installed) -> None:
    assert _run(installed.uvx("config", "example"), installed.elsewhere, installed.env, INSTALL_TIMEOUT) == example()


@pytest.mark.asyncio
@pytest.mark.parametrize(("launcher", "mode"), [("venv", "auto"), ("venv", "legacy"), ("uvx", "auto")])
async def test_stdio_handshake_lists_the_same_tools_as_the_checkout(
    installed: Installed, launcher: str, mode: str
) -> None:
    """`parts-mcp serve` (pip or pipx) and `uvx parts-mcp serve`: what MCP clients start."""
    command = [str(installed.command), "serve"] if launcher == "venv" else installed.uvx("serve")
    params = StdioServerParameters(
        command=command[0], args=command[1:], env=installed.env, cwd=str(installed.elsewhere)
    )
    with (installed.elsewhere / f"{launcher}-{mode}.err").open("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:
            assert client.server_info.name == "parts-mcp"
            assert client.server_info.version == PYPROJECT["version"]
            listed = (await client.list_tools()).tools
    async with Client(build_server(Settings(sandbox=True))) as here:
        expected = (await here.list_tools()).tools
    assert [t.model_dump() for t in listed] == [t.model_dump() for t in expected]


def test_the_registry_entry_describes_this_package() -> None:
    """server.json (MCP registry) names this package and version, and every variable the example config uses."""
    entry = json.loads((ROOT / "server.json").read_text())
    assert entry["version"] == PYPROJECT["version"] == __version__
    assert len(entry["description"]) <= 100  # the registry's limit
    [package] = entry["packages"]
    assert (package["registryType"], package["identifier"]) == ("pypi", PYPROJECT["name"])
    assert package["version"] == PYPROJECT["version"] and package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}
    assert [a["value"] for a in package["packageArguments"]] == ["serve"]
    documented = {v["name"]: v for v in package["environmentVariables"]}
    referenced = set(re.findall(r'"\$\{([A-Z0-9_]+)\}"', example()))
    assert referenced <= set(documented), f"undocumented in server.json: {referenced - set(documented)}"
    assert all(documented[name]["isSecret"] for name in referenced)
    assert documented["PARTS_MCP_CONFIG"]["format"] == "filepath"
    # The registry proves the PyPI package is ours by this marker in its description (the README).
    assert f"mcp-name: {entry['name']}" in (ROOT / "README.md").read_text()
