"""Tolerant readers for vendor JSON: each returns None for what it cannot read, never guesses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from parts_mcp.domain import Money


def first(raw: Mapping[str, Any], *names: str) -> Any:
    """The first of `names` present (and not null) in `raw`: for fields whose spelling varies."""
    return next((raw[n] for n in names if raw.get(n) is not None), None)


def money(raw: Any, currency: str | None = None) -> Money | None:
    """Money from `{"amount": "12.40", "currency": "USD"}`, or from a bare number/decimal string plus `currency`.

    JSON floats go through their shortest decimal text, never binary arithmetic.
    """
    if isinstance(raw, Mapping):
        given = cast(Mapping[str, Any], raw)
        amount, currency = given.get("amount"), str(given.get("currency") or currency or "")
    else:
        amount = raw
    if amount is None or isinstance(amount, bool) or not currency:
        return None
    try:
        if isinstance(amount, float):
            return Money.from_json_number(amount, currency)
        return Money.of(str(amount).strip(), currency)
    except (ValueError, ArithmeticError):
        return None


def integer(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    return None


def timestamp(raw: Any) -> datetime | None:
    """ISO 8601 (with Z or offset; naive taken as UTC), or epoch seconds / milliseconds."""
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw / 1000 if raw > 10**11 else raw, UTC)
    return None
