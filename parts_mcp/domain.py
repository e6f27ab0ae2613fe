"""Vendor-neutral domain types: what every vendor client returns and every tool shows.

Money is exact: a `Decimal` amount plus an ISO 4217 currency, never a float. On the wire it is
`{"amount": "12.40", "currency": "USD"}`. Each vendor's own format (decimal strings, JSON floats,
integer cents) is converted once, in that vendor's client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from parts_mcp.untrusted import ID_LIMIT, clean_data, clean_text, safe_id

# Minor-unit exponents that differ from the usual 2; enough for the currencies these vendors use.
_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MONEY_TEXT = re.compile(
    r"^\s*(?:(?P<cur1>[A-Za-z]{3})\s*)?(?P<amount>[-+]?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+)\s*(?P<cur2>[A-Za-z]{3})?\s*$"
)

DecimalText = Annotated[
    Decimal,
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}),
]


def no_bool(value: Any) -> Any:
    # JSON true is not 1 unit: a model that sends a boolean meant something else.
    if isinstance(value, bool):
        raise ValueError("should be a whole number, not true/false")
    return value


Count = Annotated[int, BeforeValidator(no_bool)]
"""A whole number of things, as callers give it; booleans refused."""


NOTE_LIMIT = 1000


def _vendor_id(value: str, info: ValidationInfo) -> str:
    if safe_id(value) is None:
        # Not a ValueError, which pydantic would wrap: raised as the vendor error it is, so each flow treats
        # it as an answer it cannot use (a look-up's vendor_errors, a read's error, a write's outcome_unknown).
        from parts_mcp.vendors.base import UnsafeVendorId  # the vendor layer imports this module

        raise UnsafeVendorId(str(info.data.get("vendor") or "vendor"), ID_LIMIT)
    return value


# Vendor-originated fields are cleaned (or, for ids, checked) here, once, whoever builds the model: a
# vendor client cannot forget it. See parts_mcp.untrusted for what is removed and why.
VendorText = Annotated[str, AfterValidator(clean_text)]
"""A vendor's name, number, status or short message: one plain line, capped."""
VendorNote = Annotated[str, AfterValidator(lambda value: clean_text(value, NOTE_LIMIT))]
"""A longer vendor (or assistant) note or caveat: one plain line, capped at NOTE_LIMIT."""
VendorId = Annotated[str, AfterValidator(_vendor_id)]
"""A vendor's id, kept exactly: one that cleaning would change is refused (`UnsafeVendorId`), never altered."""
VendorData = Annotated[dict[str, Any], AfterValidator(clean_data)]
"""Vendor extras: every string in them, keys included, cleaned."""


def _lean_schema(schema: dict[str, Any]) -> None:
    # Generated property titles ("Po Number") repeat the names and cost every client tokens on each tools/list.
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


class Model(BaseModel):
    """Base of every model that appears in a tool's schema: no generated titles."""

    # Each is built when first used (a tool's schema, a result): a start that only lists tools builds
    # those in the tools' arguments, not the dozens of result models (~17 ms of a cold start).
    model_config = ConfigDict(json_schema_extra=_lean_schema, defer_build=True)


def currency_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


class Money(Model):
    """An exact amount in one currency."""

    model_config = ConfigDict(frozen=True, json_schema_extra=_lean_schema)

    amount: DecimalText = Field(description='Decimal amount as a string, e.g. "12.40"')
    currency: str = Field(description='ISO 4217 code, e.g. "USD"')

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        # A float has already lost exactness; vendor floats must go through `Money.from_json_number`.
        if isinstance(value, float):
            raise ValueError("amount must be a decimal string, not a float")
        return value

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("amount must be a finite number")
        return value

    @field_validator("currency")
    @classmethod
    def _iso(cls, value: str) -> str:
        value = value.strip().upper()
        if not _CURRENCY.match(value):
            raise ValueError("currency must be a three-letter ISO 4217 code")
        return value

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        return cls(amount=Decimal(amount), currency=currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls.of(0, currency).rounded()

    @classmethod
    def from_json_number(cls, value: float | int | str, currency: str) -> Money:
        """Money from a vendor's JSON number, via its shortest decimal text (75.5 -> "75.5", not 75.4999...)."""
        return cls(amount=Decimal(repr(value)) if isinstance(value, float) else Decimal(value), currency=currency)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        return cls(amount=Decimal(minor).scaleb(-currency_exponent(currency)), currency=currency)

    @classmethod
    def parse(cls, text: str) -> Money:
        """Parse a human or model written total such as "123.40 USD", "USD 123.40" or "1,234.5 usd".

        Raises:
            ValueError: if the text is not an amount with a currency code.
        """
        match = _MONEY_TEXT.match(text)
        currency = match and (match["cur1"] or match["cur2"])
        if not match or not currency or (match["cur1"] and match["cur2"]):
            raise ValueError(f'{text!r} is not an amount with a currency, e.g. "123.40 USD"')
        try:
            return cls(amount=Decimal(match["amount"].replace(",", "")), currency=currency)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
            raise ValueError(f"{text!r} is not a number") from exc

    def rounded(self) -> Money:
        """This amount at the currency's minor unit (banker's rounding, as invoices do)."""
        quantum = Decimal(1).scaleb(-currency_exponent(self.currency))
        return Money(amount=self.amount.quantize(quantum, rounding=ROUND_HALF_EVEN), currency=self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __mul__(self, quantity: int) -> Money:
        return Money(amount=self.amount * quantity, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __eq__(self, other: object) -> bool:
        # 12.4 USD and 12.40 USD are the same money.
        return isinstance(other, Money) and other.currency == self.currency and other.amount == self.amount

    def __hash__(self) -> int:
        return hash((self.amount.normalize(), self.currency))

    def __str__(self) -> str:
        return f"{format(self.amount, 'f')} {self.currency}"

    @staticmethod
    def total(amounts: Iterable[Money], currency: str) -> Money:
        result = Money.zero(currency)
        for amount in amounts:
            result = result + amount
        return result.rounded()


class PriceBasis(StrEnum):
    """What a price means, so nobody mistakes a list price for what will be invoiced."""

    LIST = "list"  # catalog list price; the account's own price may be lower
    CONTRACT = "contract"  # the account's negotiated price
    QUOTE = "quote"  # a vendor quote, binding until it expires
    ESTIMATE = "estimate"  # our estimate (e.g. stored cost); the vendor computes the final figure
    ACTUAL = "actual"  # what the vendor recorded on the order


class OrderStatus(StrEnum):
    """One status vocabulary across vendors; the raw vendor status is always kept beside it."""

    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    ORDERED = "ordered"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    SHIPPED = "shipped"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


class Part(Model):
    """A part as a vendor offers it."""

    vendor: str = Field(description="Vendor key to pass to place_order")
    part_id: VendorId = Field(description="Opaque id to pass to place_order items[].part_id")
    part_number: VendorText
    name: VendorText
    manufacturer: VendorText | None = None
    unit_price: Money | None = None
    price_basis: PriceBasis = Field(description="list | contract | quote | estimate | actual")
    available_quantity: int | None = Field(default=None, description="Units in stock, when the vendor says")
    vendor_status: VendorText | None = Field(default=None, description="The vendor's own lifecycle marker for the part")
    orderable: bool = True
    expires_at: datetime | None = Field(default=None, description="When part_id (or its quoted price) stops working")
    notes: list[VendorNote] = Field(default_factory=list, description="Caveats about this offer")


class Suggestion(Model):
    """A part a vendor has that is near a query nobody found: look its part_number up to order it."""

    model_config = ConfigDict(frozen=True, json_schema_extra=_lean_schema)

    query: VendorText = Field(description="The not-found query this is near")
    vendor: str
    part_number: VendorText
    name: VendorText
    similarity: float = Field(description="0..1: how close to the query")


class LookupResult(Model):
    """Parts one vendor found for a set of queries, and near misses for the ones it did not find."""

    parts: list[Part]
    not_found: list[VendorText]
    suggestions: list[Suggestion] = Field(default_factory=list[Suggestion])


class OrderItem(Model):
    """One line the caller wants to order."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_lean_schema)

    part_id: str = Field(min_length=1, max_length=512, description="part_id from lookup_parts")
    quantity: Count = Field(ge=1, le=1_000_000)


class OrderLine(Model):
    part_id: VendorId | None = None
    part_number: VendorText
    name: VendorText | None = None
    quantity: int
    unit_price: Money | None = None
    line_total: Money | None = None
    vendor_status: VendorText | None = None
    received_quantity: int | None = None

    @classmethod
    def priced(
        cls, *, part_id: str | None, part_number: str, name: str | None, quantity: int, unit_price: Money
    ) -> OrderLine:
        """A line to order, its total the unit price times the quantity at the currency's minor unit."""
        return cls(
            part_id=part_id,
            part_number=part_number,
            name=name,
            quantity=quantity,
            unit_price=unit_price,
            line_total=(unit_price * quantity).rounded(),
        )


class Preview(Model):
    """Exactly what would be sent to the vendor, priced, before anything is written."""

    vendor: str
    po_number: str
    lines: list[OrderLine]
    notes: VendorNote | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    subtotal: Money
    total: Money = Field(description='The total to confirm, as confirmed_total (e.g. "123.40 USD")')
    currency: str
    price_basis: PriceBasis
    total_is_upper_bound: bool = Field(
        default=False, description="True when the vendor may invoice less (list prices), never more"
    )
    excludes: list[VendorText] = Field(
        default_factory=list,
        description="Charges the vendor adds when the order is created, not in total (e.g. tax, shipping)",
    )
    caveats: list[VendorNote] = Field(default_factory=list)
    approval_limit: Money | None = Field(
        default=None,
        description="The most the vendor may bill for this order once approved, charges it adds included; "
        "a higher bill is cancelled where the vendor allows, else reported as billed_above_approval",
    )


class Order(Model):
    """An order as the vendor (or, where the vendor cannot be asked, our ledger) knows it."""

    vendor: str
    order_id: VendorId
    po_number: VendorText | None = None
    status: OrderStatus
    vendor_status: VendorText | None = None
    lines: list[OrderLine] = Field(default_factory=list[OrderLine])
    subtotal: Money | None = None
    tax: Money | None = None
    shipping: Money | None = None
    total: Money | None = None
    currency: VendorText | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    notes: VendorNote | None = None
    source: Literal["vendor", "ledger"] = Field(
        default="vendor", description="ledger = recorded by this server when it placed the order"
    )
    details: VendorData = Field(default_factory=dict, description="Vendor-specific extras (tracking, invoice ...)")


class OrderSummary(Model):
    vendor: str
    order_id: VendorId
    po_number: VendorText | None = None
    status: OrderStatus
    vendor_status: VendorText | None = None
    total: Money | None = None
    created_at: datetime | None = None
    source: Literal["vendor", "ledger"] = "vendor"

    @classmethod
    def of(cls, order: Order) -> OrderSummary:
        return cls(
            vendor=order.vendor,
            order_id=order.order_id,
            po_number=order.po_number,
            status=order.status,
            vendor_status=order.vendor_status,
            total=order.total,
            created_at=order.created_at,
            source=order.source,
        )
