"""Shopmonkey's answers, as read by `parts_mcp.vendors.shopmonkey` (imported on its first answer).

The `{success, data, meta}` envelope and its pages (`data[]` with `meta.hasMore`, or a bare array), an
`inventory_part`, a purchase order (`parts[]` + `tires[]` + `fees[]`, or the seed's older flat `items[]`;
every name the seed's example and schema disagree on is read), and the `{success: false, code, message}`
error body (or an `error` object). Money is integer cents with no currency: the shop's configured one.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AliasChoices, AliasPath, BeforeValidator, Field, StrictBool, model_validator

from parts_mcp.domain import Money
from parts_mcp.vendors import _parse as parse
from parts_mcp.vendors.wire import (
    Amount,
    Id,
    Integer,
    Maybe,
    Objects,
    Record,
    Text,
    Timestamp,
    Wire,
    is_array,
    is_object,
)

PAGE = 100  # the API's silent cap on `limit`: asking for more returns 100 anyway


def _integral_text(value: Any) -> Any:
    # `number` is an integer in the schema and a string in older records; 1042.0 and "1042" are PO 1042.
    number = parse.integer(value)
    return str(number) if number is not None else value


def _array(value: Any) -> Any:
    # A page whose `data` is no array is not a page: refused, not read as an empty one.
    if not is_array(value):
        raise ValueError("not an array")
    return value


_PoNumber = Annotated[Text, BeforeValidator(_integral_text)]
# The field an error names: a non-blank string, or nothing.
_Name = Annotated[str | None, BeforeValidator(lambda v: v if isinstance(v, str) and v.strip() else None)]
R = TypeVar("R", bound=Wire)


def _money(cents: int | None, currency: str) -> Money | None:
    # Shopmonkey sends integer cents with no currency: the shop's configured currency is theirs.
    return Money.from_minor(cents, currency) if cents is not None else None


class Envelope(Wire):
    """`{success, data, meta}`: a 2xx that says `success: false` is a refusal, with a message. A bare array
    carries no envelope."""

    empty_if_not_object = True

    success: Maybe[StrictBool] = None
    message: Text = None


class _Meta(Wire):
    empty_if_not_object = True  # a meta that is not an object says nothing

    has_more: Maybe[StrictBool] = Field(default=None, validation_alias="hasMore")


class Page(Wire, Generic[R]):
    """One page of a list call: `data[]` and `meta`, or a bare array (tolerated, with no word on more pages)."""

    data: Annotated[Objects[R], BeforeValidator(_array)]
    entries_sent: int = 0  # objects or not: a full page hints at another
    meta: _Meta = Field(default_factory=_Meta)

    @model_validator(mode="before")
    @classmethod
    def _enveloped(cls, value: Any) -> Any:
        body: Any = {"data": value} if is_array(value) else value
        if is_object(body) and is_array(data := body.get("data")):
            return {**body, "entries_sent": len(data)}
        return body

    @property
    def more(self) -> bool:
        # Without hasMore, a full page is the only hint that another may follow.
        return self.meta.has_more if self.meta.has_more is not None else self.entries_sent >= PAGE


class One(Wire, Generic[R]):
    data: R


class InventoryPart(Record):
    """An `inventory_part`: the shop's own stock and stored prices (integer cents)."""

    id: Maybe[Id] = None
    number: Text = None
    name: Text = None
    deleted: Annotated[bool, BeforeValidator(bool)] = False
    location_id: Maybe[Id] = Field(default=None, validation_alias="locationId")
    wholesale_cost_cents: Integer | None = Field(default=None, validation_alias="wholesaleCostCents")
    retail_cost_cents: Integer | None = Field(default=None, validation_alias="retailCostCents")
    # Quantities are numbers in the schema (fluids by the quart): a fraction is no whole count of units.
    available_quantity: Maybe[Integer] = Field(
        default=None, validation_alias=AliasChoices("availableQuantity", "quantity")
    )

    def wholesale(self, currency: str) -> Money | None:
        return _money(self.wholesale_cost_cents, currency)

    def retail(self, currency: str) -> Money | None:
        return _money(self.retail_cost_cents, currency)


class Line(Record):
    """A purchase order's part (`parts[]`); tires and the older flat `items[]` differ in their id field."""

    inventory_id: Maybe[Id] = Field(default=None, validation_alias="inventoryPartId")
    number: Text = None
    name: Text = None
    cost_cents: Integer | None = Field(default=None, validation_alias="costCents")
    quantity: Amount | None = None
    status: Text = None
    received_quantity: Maybe[Integer] = Field(default=None, validation_alias="receivedQuantity")

    def unit_price(self, currency: str) -> Money | None:
        return _money(self.cost_cents, currency)

    def total(self, currency: str) -> Money | None:
        unit = self.unit_price(currency)
        if unit is None or self.quantity is None:
            return None
        return Money(amount=unit.amount * self.quantity, currency=unit.currency).rounded()


class _TireLine(Line):
    inventory_id: Maybe[Id] = Field(default=None, validation_alias="inventoryTireId")


class _Item(Line):
    """The seed's older shape: one flat `items[]` entry with a `type`, and extra charges of its own."""

    inventory_id: Maybe[Id] = Field(default=None, validation_alias="inventoryItemId")
    type: Text = None
    shipping_charge_cents: Integer | None = Field(default=None, validation_alias="shippingChargeCents")
    core_charges_cents: Integer | None = Field(default=None, validation_alias="coreChargesCents")
    excise_tax_cents: Integer | None = Field(default=None, validation_alias="exciseTaxCents")

    def charges(self, currency: str) -> list[Money]:
        cents = (self.shipping_charge_cents, self.core_charges_cents, self.excise_tax_cents)
        return [Money.from_minor(c, currency) for c in cents if c]


class _Fee(Record):
    """A charge that is not a part (shipping, core charge, disposal ...): no number, no quantity."""

    name: Text = None
    kind: Text = None
    amount_cents: Integer | None = Field(default=None, validation_alias="amountCents")

    def amount(self, currency: str) -> Money | None:
        return _money(self.amount_cents, currency)


class _Vendor(Record):
    name: Text = None


class _RepairOrder(Record):
    """The repair order a purchase order is for."""

    number: Text = None
    name: Text = None
    coalesced_name: Text = Field(default=None, validation_alias="coalescedName")


class PoHead(Record):
    """What a listing reads of a purchase order."""

    number: _PoNumber = None
    status: Text = None
    total_cents: Integer | None = Field(
        default=None, validation_alias=AliasChoices("totalCostCents", "totalPriceCents")
    )
    created_date: Timestamp | None = Field(default=None, validation_alias="createdDate")
    location_id: Maybe[Id] = Field(default=None, validation_alias="locationId")

    def total(self, currency: str) -> Money | None:
        return _money(self.total_cents, currency)


class Listed(PoHead):
    id: Maybe[Id] = None  # a listed record without an id names nothing, and is passed over


class PurchaseOrder(PoHead):
    """One purchase order, read whole: `parts[]` + `tires[]` + `fees[]`, or the older flat `items[]`."""

    id: Id
    parts: Objects[Line] = ()
    tires: Objects[_TireLine] = ()
    items: Objects[_Item] = ()
    fees: Objects[_Fee] = ()
    vendor: Maybe[_Vendor] = None
    order: Maybe[_RepairOrder] = None
    vendor_id: Text = Field(default=None, validation_alias="vendorId")
    provider: Text = None
    invoice_number: Text = Field(default=None, validation_alias="invoiceNumber")
    repair_order_id: Text = Field(default=None, validation_alias="orderId")
    note: Text = None
    updated_date: Timestamp | None = Field(default=None, validation_alias="updatedDate")
    ordered_date: Timestamp | None = Field(default=None, validation_alias="orderedDate")
    fulfilled_date: Timestamp | None = Field(
        default=None, validation_alias=AliasChoices("fulfilledDate", "fullfiledDate")
    )


class ErrorSource(Wire):
    code: Text = None
    message: Text = None


class _ErrorData(Wire):
    field: _Name = None
    path: _Name = None
    first_field: _Name = Field(default=None, validation_alias=AliasPath("fields", 0))


class _ErrorEntry(Wire):
    field: _Name = None
    instance_path: _Name = Field(default=None, validation_alias="instancePath")


class ErrorBody(ErrorSource):
    """The documented `{success: false, code, message, data?}`, or an `error` object (older APIs, gateways).

    Every field that does not fit is no word, so an error body always reads: the status still says what failed.
    """

    empty_if_not_object = True

    error: Maybe[ErrorSource | str] = None
    data: Maybe[_ErrorData] = None
    first_error: Maybe[_ErrorEntry] = Field(default=None, validation_alias=AliasPath("errors", 0))

    def fields_named(self) -> list[str | None]:
        """Where a refusal names its field: `data.field`, `data.path`, `data.fields[0]`, then `errors[0]`."""
        data, first = self.data or _ErrorData(), self.first_error or _ErrorEntry()
        return [data.field, data.path, data.first_field, first.field, first.instance_path]
