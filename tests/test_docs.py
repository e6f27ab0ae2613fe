"""The README and config.example.toml say what the server really does."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from parts_mcp.config import Settings, load
from parts_mcp.server.app import TOOLS

ROOT = Path(__file__).parent.parent


def test_readme_names_every_tool_and_both_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    for spec in TOOLS:
        assert f"`{spec.name}`" in readme
    assert "./dev serve" in readme and "./dev test" in readme
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()


def test_config_example_loads_and_documents_every_top_level_key(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tomllib.loads((ROOT / "config.example.toml").read_text())
    for section in ("server", "guard", "store"):
        model = getattr(Settings.model_fields[section].annotation, "model_fields", {})
        text = (ROOT / "config.example.toml").read_text()
        for key in model:
            assert f"{key} =" in text, f"[{section}] {key} is not documented"  # commented-out examples count
    for section in raw["vendors"].values():
        for value in section.values():
            if isinstance(value, str) and value.startswith("${"):
                monkeypatch.setenv(value[2:-1], "sk_live_example_only")
    settings = load(ROOT / "config.example.toml")
    assert set(settings.vendors) == set(raw["vendors"])


def test_config_example_is_the_registrys_example_and_the_cli_prints_it() -> None:
    """A new vendor kind adds its section here: regenerate with UPDATE_SNAPSHOTS=1 (or parts-mcp config example)."""
    from parts_mcp.config import example
    from parts_mcp.vendors import REGISTRY

    if os.environ.get("UPDATE_SNAPSHOTS"):
        (ROOT / "config.example.toml").write_text(example())
    assert (ROOT / "config.example.toml").read_text() == example()
    assert all(f"[vendors.{kind}]" in example() for kind in REGISTRY)
    printed = subprocess.run(
        [sys.executable, "-m", "parts_mcp", "config", "example"], capture_output=True, check=True, timeout=60
    )
    assert printed.stdout.decode() == example()
