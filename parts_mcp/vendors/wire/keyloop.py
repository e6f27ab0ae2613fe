"""Keyloop's answers, as read by `parts_mcp.vendors.keyloop` (imported on its first answer).

Parts search and brands, price-availability (shapes from a third-party client), the PartsOrder of
POST and GET /parts-orders (seeds/002) and the error envelope; `Price`, the exact Money read from a
Keyloop Price object. Tolerant where the documents leave the shape open (vendors.md section 3): an
optional field that cannot be read is absent (a price without a currency is no price, an
availableStock of "n/a" is unknown stock), a list entry that cannot be read is skipped, and an answer
that is no object reads as an empty one, so each caller decides what a missing field means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from parts_mcp.domain import Money
from parts_mcp.vendors.base import clean_text
from parts_mcp.vendors.wire import (
    Amount,
    Id,
    Integer,
    Maybe,
    Record,
    Rows,
    Text,
    Timestamp,
    is_array,
    is_object,
)

# ------------------------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class Price:
    """Keyloop's Price {netValue, grossValue, taxValue, taxRate, currencyCode}, per unit, as exact Money."""

    net: Money
    tax: Money | None
    gross: Money | None
    rate: Decimal | None

    def describe(self) -> str:
        if self.gross is None:
            return f"{self.net} net"
        rate = f" {format(self.rate.normalize(), 'f')}%" if self.rate is not None else ""
        return f"{self.net} net ({self.gross} incl.{rate} tax)"


def _money(amount: Decimal | None, currency: str) -> Money | None:
    """To the currency's minor unit when that changes no digit: 58.4 -> 58.40, but 0.125 stays."""
    if amount is None:
        return None
    try:
        value = Money(amount=amount, currency=currency)
    except ValueError:  # not a finite amount, or not an ISO currency: no price rather than a wrong one
        return None
    rounded = value.rounded()
    return rounded if rounded == value else value


def money_diff(a: Money, b: Money) -> Money:
    """a - b (Money adds, but does not subtract)."""
    return Money(amount=a.amount - b.amount, currency=a.currency)


# ------------------------------------------------------------------------------------------- answers

T = TypeVar("T")

_Code = StrictStr | StrictInt
"""partCode as Keyloop spelled it (an integer in the seed's example), so it is sent back the same way."""


def _one_as_many(value: Any) -> Any:
    return [value] if is_object(value) else value


_OneOrRows = Annotated[Rows[T], BeforeValidator(_one_as_many)]
"""`Rows`, where one object stands for a list of one (the seed's order answer has `parts` as one object)."""


def _scalars(value: Any) -> Any:
    return {k: str(v) for k, v in value.items() if isinstance(v, str | int)} if is_object(value) else value


_Flat = Annotated[dict[str, str], BeforeValidator(_scalars)]
"""An object's text and number fields as text (deliveryAddress: postalCode is an integer in the seed)."""


class _Answer(Record):
    """Keyloop's camelCase fields under snake_case names; a null field is one not sent."""

    model_config = ConfigDict(alias_generator=AliasGenerator(validation_alias=to_camel))


class _PriceWire(_Answer):
    currency: Maybe[StrictStr] = Field(default=None, validation_alias=AliasChoices("currencyCode", "currency"))
    net_value: Maybe[Amount] = None
    gross_value: Maybe[Amount] = None
    tax_value: Maybe[Amount] = None
    tax_rate: Maybe[Amount] = None  # a percent: 20

    def price(self) -> Price | None:
        """Any two of net, tax and gross give the third; without a currency or a net there is no price."""
        if self.currency is None:
            return None
        net, gross, tax = (_money(v, self.currency) for v in (self.net_value, self.gross_value, self.tax_value))
        if net is None and gross is not None and tax is not None:
            net = money_diff(gross, tax)
        if net is None:
            return None
        if tax is None and gross is not None:
            tax = money_diff(gross, net)
        if gross is None and tax is not None:
            gross = net + tax
        rate = self.tax_rate if self.tax_rate is not None and self.tax_rate.is_finite() else None
        return Price(net=net, tax=tax, gross=gross, rate=rate)


def _read_price(raw: Any) -> Price | None:
    try:
        return _PriceWire.model_validate(raw).price()
    except ValidationError:
        return None


_PriceField = Annotated[Price | None, PlainValidator(_read_price)]
"""A Price object, read once into exact Money; None when it cannot be."""


class _OrderPrice(_Answer):
    """An entry of orderPrices: {orderType, orderPrice}, or the Price's own fields beside orderType."""

    order_type: StrictStr
    order_price: _PriceField = None

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if is_object(data) and not is_object(data.get("orderPrice")):
            return {**data, "orderPrice": data}
        return data


def _by_order_type(value: Any) -> Any:
    # orderPrices may also be a map by order type: {"STK": Price, "VOR": Price}.
    if is_object(value) and "orderType" not in value:
        return [{"orderType": k, "orderPrice": v} for k, v in value.items()]
    return value


class _Reference(_Answer):
    """A vehicle reference type a part demands: {"type": "VIN"}, or just "VIN"."""

    kind: StrictStr = Field(validation_alias="type")

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        return {"type": data} if isinstance(data, str) else data


def _listed_types(value: Any) -> Any:
    # A third-party client reads mandatoryVehicleReferences as text: "VIN,KEYNUMBER".
    return re.split(r"[,;\s]+", value) if isinstance(value, str) else value


class Coded(_Answer):
    """A part as Keyloop names it: partId, which is brandCode + partCode ("S" + 7654321)."""

    part_id: Maybe[Id] = None
    brand_code: Text = None
    part_code: Maybe[_Code] = None

    @property
    def identity(self) -> str:
        """partId, else brandCode + partCode; "" when the answer names no part."""
        if self.part_id is not None and self.part_id.strip():
            return clean_text(self.part_id, 80)
        # partCode is an integer in the seed's example, but real part codes are alphanumeric.
        if self.brand_code and self.part_code is not None:
            return clean_text(f"{self.brand_code}{self.part_code}", 80)
        return ""

    @property
    def codes(self) -> tuple[str, str | int] | None:
        """(brandCode, partCode) as Keyloop spelled them, when both name the part."""
        if not self.identity or self.brand_code is None or self.part_code is None:
            return None
        return self.brand_code, self.part_code


class _Alternatives(_Answer):
    alternative_type: Text = None
    supersession_date: Maybe[Timestamp] = None
    parts: Rows[Coded] = ()

    def notes(self) -> list[str]:
        ids = [part.identity for part in self.parts if part.identity]
        if not ids:
            return []
        kind = clean_text(self.alternative_type or "alternative", 40).lower()
        since = f" since {self.supersession_date.date().isoformat()}" if self.supersession_date else ""
        return [f"Alternative parts ({kind}{since}): {', '.join(ids)}."]


class SearchPart(Coded):
    description: Text = None
    alternative_parts: Maybe[_Alternatives] = None

    @property
    def name(self) -> str:
        return clean_text(self.description or self.identity, 200)


class _Listing(_Answer):
    """A list answer {<listed>: [...], totalItems, ...}; third-party clients also read a bare list."""

    empty_if_not_object = True
    listed: ClassVar[str]  # the field that holds the list

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        return {cls.listed: data} if is_array(data) else data


class SearchAnswer(_Listing):
    listed = "parts"
    parts: Rows[SearchPart] = ()


class _Brand(_Answer):
    brand_code: Maybe[StrictStr] = None
    description: Text = None


class BrandsAnswer(_Listing):
    listed = "brands"
    brands: Rows[_Brand] = ()


class _OrderPrices(_Answer):
    entries: Annotated[_OneOrRows[_OrderPrice], BeforeValidator(_by_order_type)] = ()


def order_prices(raw: Any) -> dict[str, Price]:
    """orderPrices as a list of {orderType, orderPrice}, one such object, or a map by order type."""
    entries = _OrderPrices(entries=raw).entries
    return {e.order_type.strip().upper(): e.order_price for e in entries if e.order_price is not None}


class _References(_Answer):
    entries: Annotated[_OneOrRows[_Reference], BeforeValidator(_listed_types)] = ()


def reference_types(raw: Any) -> tuple[str, ...]:
    """mandatoryVehicleReferences as [{type}], ["VIN"], or "VIN,KEYNUMBER"."""
    kinds = (clean_text(r.kind, 40).upper() for r in _References(entries=raw).entries if r.kind.strip())
    return tuple(dict.fromkeys(kinds))


_OrderPricesField = Annotated[dict[str, Price], PlainValidator(order_prices)]
_ReferenceTypes = Annotated[tuple[str, ...], PlainValidator(reference_types)]


class Offer(Coded):
    """A part's price-availability (shape from a third-party client, vendors.md section 3)."""

    empty_if_not_object = True

    list_price: _PriceField = None
    surcharge: _PriceField = None
    order_prices: _OrderPricesField = Field(default_factory=dict[str, Price])
    available_stock: Maybe[Integer] = None
    lead_time_in_days: Maybe[Integer] = None
    is_available_for_back_order: Maybe[StrictBool] = None
    sales_blocked: Maybe[StrictBool] = None
    sales_blocked_description: Text = None
    mandatory_vehicle_references: _ReferenceTypes = ()


class PartsOrderLine(_Answer):
    part_id: Maybe[Id] = None
    part: Maybe[Coded] = None
    quantity: Maybe[Integer] = None
    order_price: _PriceField = None
    parts_order_line_status: Maybe[StrictStr] = None
    order_line_id: Text = None

    @property
    def identity(self) -> str:
        part = self.part or Coded()
        return self.part_id or part.part_id or part.identity or "?"

    @property
    def status(self) -> str | None:
        status = self.parts_order_line_status
        return clean_text(status, 40).upper() if status else None


class PartsOrder(_Answer):
    """A PartsOrder (seeds/002): the 201 answer and GET /parts-orders/{id}; a 202 holds only the id."""

    empty_if_not_object = True

    parts_order_id: Maybe[Id] = None
    parts_order_date_time: Maybe[Timestamp] = None
    order_status: Maybe[StrictStr] = None
    order_type: Maybe[StrictStr] = None
    order_reference: Maybe[StrictStr] = None
    delivery_address: Maybe[_Flat] = None
    order_contact: Maybe[_Flat] = None
    parts: _OneOrRows[PartsOrderLine] = ()


class _Issue(_Answer):
    field: Text = None
    issue: Text = None

    @property
    def text(self) -> str:
        return f"{self.field}: {self.issue}" if self.field else self.issue or ""


class Problem(_Answer):
    """Keyloop's error envelope (seeds/002): {correlationId, message, details: [{field, value, issue}], links}."""

    empty_if_not_object = True

    correlation_id: Maybe[StrictStr] = None
    message: Text = None
    details: Rows[_Issue] = ()
