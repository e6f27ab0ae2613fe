"""The edge of every vendor client: a vendor's JSON becomes typed wire models here, or a clear error.

Each vendor module declares pydantic models for the answers it reads (subclasses of `Wire`), with
aliases for the spellings its documents show (`Field(validation_alias=AliasChoices(...))`) and the
field types below for exact money, tolerant integers and timestamps, then reads them with `read`.
Client code reads attributes, never dicts; an answer that does not fit is a `VendorBadResponse`
(which, for a write, means the order may exist), never a KeyError deep in a method.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from parts_mcp.vendors import _parse
from parts_mcp.vendors.base import VendorBadResponse

W = TypeVar("W", bound=BaseModel)


class Wire(BaseModel):
    """A vendor answer as read: unknown fields ignored (vendors add fields), aliases or names accepted."""

    # Built on first use: a production start imports every vendor module and reads none of their answers yet.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True, defer_build=True)


def read(model: type[W], data: Any, vendor: str, what: str) -> W:
    """`data` as `model`.

    Raises:
        VendorBadResponse: the answer does not have the shape the vendor's documents give.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where = ", ".join(sorted({".".join(map(str, e["loc"])) or "body" for e in exc.errors()})[:5])
        raise VendorBadResponse(vendor, f"{vendor}'s {what} could not be read (at {where}).") from exc


def _exact(value: Any) -> Any:
    # A JSON float goes through its shortest decimal text (75.5 -> "75.5"), never binary arithmetic.
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int | str):
        try:
            return Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a number") from exc
    return value


def _integer(value: Any) -> Any:
    parsed = _parse.integer(value)
    if parsed is None and value is not None:
        raise ValueError(f"{value!r} is not a whole number")
    return parsed


def _timestamp(value: Any) -> Any:
    parsed = _parse.timestamp(value)
    if parsed is None and value is not None:
        raise ValueError(f"{value!r} is not a date-time")
    return parsed


Amount = Annotated[Decimal, BeforeValidator(_exact)]
"""An exact amount from a JSON number or decimal string (floats via their decimal text)."""
Integer = Annotated[int, BeforeValidator(_integer)]
"""A whole number from a JSON integer, an integral float or a digit string; booleans refused."""
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
"""ISO 8601 (Z, offset, or naive as UTC) or epoch seconds / milliseconds, always timezone-aware."""
