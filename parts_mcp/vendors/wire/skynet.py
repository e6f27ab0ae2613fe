"""Skynet Parts' answers, as read by `parts_mcp.vendors.skynet` (imported on its first answer).

POST /catalog's found parts and not-found echo, POST /orders' order (its total's and timestamp's names
are undocumented: the likely spellings), and the error envelope with INSUFFICIENT_INVENTORY's details.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field, model_validator

from parts_mcp.domain import Money
from parts_mcp.vendors.base import clean_text
from parts_mcp.vendors.wire import (
    Amount,
    Id,
    Integer,
    Label,
    Maybe,
    Record,
    Rows,
    Text,
    Timestamp,
    Wire,
    is_array,
    is_object,
)

# INSUFFICIENT_INVENTORY's details are undocumented: the names a list of short items may come under.
_SHORT_LISTS = ("items", "short_items", "insufficient", "parts")


def _money(value: Any) -> Money:
    price = _Price.model_validate(value)
    return Money(amount=price.amount, currency=price.currency)


Price = Annotated[Money, BeforeValidator(_money)]
"""Domain money from Skynet's {"amount": "12.40", "currency": "USD"} (a JSON number amount too)."""


class _Price(Wire):
    amount: Amount
    currency: str


class CatalogPart(Record):
    """One of POST /catalog's found_parts."""

    token: Id = Field(validation_alias="part_id")  # Skynet's part_id: new per look-up, valid about an hour
    part_number: Label
    title: Text = None
    vendor: Text = None
    price: Maybe[Price] = None  # the list price
    available_stock: Maybe[Integer] = None
    status: Text = None

    def orderable(self) -> bool:
        """Only ACTIVE is documented as orderable: a status sent as anything else (even unreadably) is not;
        none at all says nothing against ordering."""
        return self.status == "ACTIVE" or "status" not in self.model_fields_set


class Catalog(Record):
    empty_if_not_object = True

    found_parts: Rows[CatalogPart] = ()
    not_found: Rows[str] = ()  # the request's own strings, echoed


class Line(Record):
    """A line of the placed order: its unit price is the account's B2B price, not the list price."""

    part_number: Text = None
    title: Text = None
    quantity: Maybe[Integer] = None
    unit_price: Maybe[Price] = None
    line_total: Maybe[Price] = None


class _Order(Record):
    """POST /orders' order. The names of its total and timestamp are undocumented: the likely spellings."""

    order_id: Id
    status: Text = None
    po_number: Text = None
    line_items: Rows[Line] = ()
    total: Maybe[Price] = Field(
        default=None, validation_alias=AliasChoices("total", "order_total", "total_amount", "grand_total", "subtotal")
    )
    created_at: Maybe[Timestamp] = Field(
        default=None, validation_alias=AliasChoices("created_at", "createdAt", "created", "timestamp", "placed_at")
    )

    def amount(self) -> Money | None:
        """The order's total, or else the sum of its lines when every line has one."""
        if self.total is not None:
            return self.total
        totals = [line.line_total for line in self.line_items if line.line_total is not None]
        if totals and len(totals) == len(self.line_items):
            return Money.total(totals, totals[0].currency)
        return None


class Placed(Record):
    order: _Order


class _ShortItem(Record):
    """A line Skynet has too little stock for (its shape is undocumented: these are the likely names)."""

    part_id: Text = None
    part_number: Text = None
    requested: Maybe[Integer] = None
    available: Maybe[Integer] = None

    def described(self) -> str:
        named = clean_text(self.part_number or self.part_id, 80)
        return f"{named}: requested {self.requested}, available {self.available}"


class Shortfall(Wire):
    """INSUFFICIENT_INVENTORY's details: a list under one of the common names, or a {part: available} map."""

    items: Rows[_ShortItem] = ()

    @model_validator(mode="before")
    @classmethod
    def _listed(cls, data: Any) -> Any:
        if not is_object(data):
            return {}
        listed = next((data[name] for name in _SHORT_LISTS if is_array(data.get(name))), None)
        if listed is not None:
            return {"items": listed}
        return {"items": [{"part_number": name, "available": n} for name, n in data.items() if isinstance(n, int)]}


class _Error(Record):
    empty_if_not_object = True

    code: Text = None
    message: Text = None
    details: Shortfall = Field(default_factory=Shortfall)


class ErrorBody(Record):
    """Skynet's error envelope, {"success": false, "error": {"code", "message", "details"}}, read as far as it goes."""

    empty_if_not_object = True

    error: _Error = Field(default_factory=_Error)
