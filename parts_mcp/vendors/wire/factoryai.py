"""Factory AI's answers, as read by `parts_mcp.vendors.factoryai` (imported on its first answer).

GET /parts and /inventory (bare arrays; an envelope tolerated), GET /parts/{partId}, the part orders of
POST / GET / PUT status and of the list (`{partOrders, pagination}`), and both error-body shapes. Field
names are camelCase on the wire. The client is tolerant where the documents leave room: a field in a
shape we cannot read counts as absent (`Maybe`), and a row that cannot be used is skipped (`Rows`)
rather than failing its neighbours. Text stays as sent here; it is cleaned where it becomes ours.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

from parts_mcp.vendors.wire import (
    Id,
    Integer,
    JsonMoney,
    Label,
    Maybe,
    Rows,
    Text,
    Timestamp,
    Wire,
    is_array,
    is_object,
)

# A part order's documented extras, kept (as sent) in PartOrder.details when they carry something.
_DETAIL_KEYS = (
    "orderNumber",
    "priority",
    "supplierId",
    "supplierName",
    "supplierContact",
    "requestedBy",
    "requestedByName",
    "approvedBy",
    "approvedByName",
    "orderDate",
    "approvedDate",
    "sentDate",
    "requestedDeliveryDate",
    "expectedDeliveryDate",
    "actualDeliveryDate",
    "trackingNumber",
    "invoiceNumber",
    "paymentTerms",
    "shippingMethod",
    "shippingAddress",
    "requiresApproval",
    "approvalRequired",
    "justification",
    "statusHistory",
    "attachments",
)
_ENVELOPES = ("parts", "inventory", "items", "data", "results")  # tolerated around a documented bare array

R = TypeVar("R", bound=BaseModel)


def _object(value: Any) -> Any:
    return value if is_object(value) else {}


Object = Annotated[dict[str, JsonValue], BeforeValidator(_object)]
"""A JSON object as sent; anything else reads as empty."""


class _Camel(Wire):
    model_config = ConfigDict(alias_generator=to_camel)


class PartFields(_Camel):
    name: Text = None
    description: Text = None
    manufacturer: Text = None
    unit: Text = None
    cost: Maybe[JsonMoney] = None  # the plant's stored cost, major units
    site: Text = None


class PartRow(PartFields):
    """A part record of GET /parts; usable only with its partId and partNumber."""

    part_id: Id
    part_number: Label


class FetchedPart(PartFields):
    """GET /parts/{partId}: the record, bare as documented or in a `part`/`data` envelope."""

    part_id: Maybe[Id] = None
    part_number: Text = None

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        return _unwrap(data, "part")


class StockRow(_Camel):
    """An inventory record of GET /inventory, joined to its part on partId."""

    # Everything it carries is kept: two searches may return the same record, and a record equal in
    # all of it is that same record (not a second stock of the part).
    model_config = ConfigDict(extra="allow")

    part_id: Id
    site: Text = None
    quantity: Maybe[Integer] = None
    min_stock_level: Maybe[Integer] = None


class Listing(_Camel, Generic[R]):
    """GET /parts or /inventory: a bare array as documented; an enveloped one is tolerated."""

    rows: Rows[R]

    @model_validator(mode="before")
    @classmethod
    def _envelope(cls, data: Any) -> Any:
        if is_object(data):
            return {"rows": next((data[k] for k in _ENVELOPES if is_array(data.get(k))), None)}
        return {"rows": data}


class Totals(_Camel):
    empty_if_not_object = True

    subtotal: Maybe[JsonMoney] = None
    tax: Maybe[JsonMoney] = None
    shipping: Maybe[JsonMoney] = None
    total: Maybe[JsonMoney] = None


class ItemRow(_Camel):
    """A line of a part order."""

    part_id: Maybe[Id] = None
    part_number: Text = None
    part_name: Text = None
    quantity: Maybe[Integer] = None
    unit_cost: Maybe[JsonMoney] = None
    total_cost: Maybe[JsonMoney] = None
    status: Text = None
    received_quantity: Maybe[Integer] = None


class PartOrder(_Camel):
    """A part order as created, got or listed (the list's rows carry fewer fields)."""

    id: Id
    order_number: Text = None
    status: Text = None
    notes: Text = None
    currency: Text = None
    totals: Totals = Field(default_factory=Totals)
    items: Rows[ItemRow] = ()
    created_at: Maybe[Timestamp] = None
    order_date: Maybe[Timestamp] = None
    updated_at: Maybe[Timestamp] = None
    details: Object = Field(default_factory=dict)
    """The documented extras (_DETAIL_KEYS) that carry something, as sent."""

    @model_validator(mode="before")
    @classmethod
    def _details(cls, data: Any) -> Any:
        if not is_object(data):
            return data
        return {**data, "details": {k: data[k] for k in _DETAIL_KEYS if data.get(k) not in (None, [])}}

    @property
    def created(self) -> datetime | None:
        return self.created_at or self.order_date


class OrderAnswer(_Camel):
    """POST or GET of one part order: the order, bare as documented or in a `partOrder`/`data` envelope."""

    order: PartOrder

    @model_validator(mode="before")
    @classmethod
    def _envelope(cls, data: Any) -> Any:
        return {"order": _unwrap(data, "partOrder")}


class Pagination(_Camel):
    has_more: Maybe[bool] = None


class OrderPage(_Camel):
    """GET /part-orders: `{partOrders, pagination}` as documented; `data` or a bare array tolerated."""

    empty_if_not_object = True

    orders: Rows[PartOrder] = Field((), validation_alias=AliasChoices("partOrders", "data"))
    pagination: Maybe[Pagination] = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        return {"partOrders": data} if is_array(data) else data


class ErrorBody(_Camel):
    """An error answer: `{error, details}` (400), `{error, orderId}` (404), `{error, reason}` (403, 409) on the
    order endpoints, `{error, code, timestamp}` elsewhere; a body that is not an object reads as empty."""

    empty_if_not_object = True

    error: Text = Field(default=None, validation_alias=AliasChoices("error", "message"))
    reason: Text = None  # 403 / 409 on the order endpoints
    details: Object = Field(default_factory=dict)  # 400: {field: message}
    code: Text = None  # the overview's generic shape
    which: Text = Field(default=None, validation_alias=AliasChoices("orderId", "partId"))  # 404


def _unwrap(data: Any, key: str) -> Any:
    # The record itself when it has an id; otherwise the one in `key` or `data`, if any.
    if is_object(data) and "id" not in data and "partId" not in data:
        return next((data[name] for name in (key, "data") if is_object(data.get(name))), data)
    return data
