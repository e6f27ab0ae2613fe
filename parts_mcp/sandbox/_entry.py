"""What a simulator module declares for the sandbox: where its API lives, how to make it, its config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Simulated:
    api_path: str  # where the vendor's real API lives under its host, e.g. /api/b2b
    factory: Callable[..., Any]  # (clock=...) -> the simulator (an object with .app and .faults)
    settings: dict[str, Any]  # the config section minus base_url; "{base_url}" in a value is replaced by it
