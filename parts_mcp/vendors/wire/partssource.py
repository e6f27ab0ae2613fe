"""PartsSource's answers, as read by `parts_mcp.vendors.partssource` (imported on its first answer).

The documented wrapper ``{success, data, errors, correlationId, timestamp}``, any error body (read for its
words), the catalog search's hits and /catalog/detail's product with its price options, and orders as
POST /orders, GET /orders/{orderId} and the order search answer them. The documents give the wrappers and
the catalog detail's option fields; the rest (search hits, orders) is undocumented, so every field is
optional, several spellings are read, a null or a value of the wrong kind counts as absent and a list entry
that cannot be read is skipped: an odd field never sinks an answer. Only an order answer that is not an
object at all is refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AliasChoices, BeforeValidator, Field, StrictBool, StrictInt, StrictStr, model_validator

from parts_mcp.vendors.base import clean_text
from parts_mcp.vendors.wire import Integer, JsonMoney, Label, Maybe, Record, Rows, Text, Timestamp, Wire, is_array

T = TypeVar("T")


def _listed(value: Any) -> Any:
    return value if is_array(value) else [value]


def _named(value: Any) -> Any:
    # requiredFields' schema is undocumented: an entry may be the field's name itself.
    return [{"name": entry} if isinstance(entry, str) else entry for entry in value] if is_array(value) else value


Scalar = Maybe[StrictStr | StrictInt | StrictBool]
"""A plain value kept as it was sent (an order's extra details)."""


class Envelope(Wire):
    """The documented wrapper of every answer: ``{success, data, errors, correlationId, timestamp}``; any other
    body is a bare payload."""

    empty_if_not_object = True

    success: Maybe[StrictBool] = None
    data: Any = None
    correlation_id: Any = Field(None, validation_alias="correlationId")

    def wraps(self) -> bool:
        """Whether this is the wrapper, not a bare payload that happens to have a ``data`` field."""
        return "data" in self.model_fields_set and bool({"success", "correlation_id"} & self.model_fields_set)


class _FieldError(Record):
    field: Text = Field(None, validation_alias=AliasChoices("field", "propertyName", "name"))
    message: Text = Field(None, validation_alias=AliasChoices("message", "detail", "error"))

    def said(self) -> str:
        return f"{self.field}: {self.message or ''}" if self.field else self.message or ""


class Problem(Record):
    """Any error body: the controller's ``{success: false, errors: [text]}``, RFC 7807 ``{title, detail, errors}``,
    ASP.NET's errors by field, a gateway's ``{message}`` or Cognito's ``{error, error_description}``. It is read
    for its words only: a body of any other shape has none."""

    empty_if_not_object = True

    errors: Maybe[
        tuple[Maybe[_FieldError | Label], ...] | dict[str, Annotated[Rows[Label], BeforeValidator(_listed)]]
    ] = None
    detail: Text = Field(
        None, validation_alias=AliasChoices("detail", "message", "error_description", "error", "title")
    )

    def text(self) -> str:
        """The vendor's words, each once."""
        if isinstance(self.errors, dict):
            found = [f"{where}: {one}" for where, said in self.errors.items() for one in said]
        else:
            found = [e if isinstance(e, str) else e.said() for e in self.errors or () if e is not None]
        if self.detail is not None and not any(self.detail in entry for entry in found):
            found.insert(0, self.detail)
        return "; ".join(dict.fromkeys(s.strip().rstrip(".") for s in found if s.strip()))


class _Pagination(Record):
    has_more: Maybe[StrictBool] = Field(None, validation_alias="hasMore")


class Page(Record, Generic[T]):
    """A search answer, documented as ``{items, pagination}``; a bare list, or items under another name, read too."""

    empty_if_not_object = True

    items: Rows[T] = Field((), validation_alias=AliasChoices("items", "results", "orders", "products"))
    pagination: Maybe[_Pagination] = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        return {"items": value} if is_array(value) else value


class _RequiredField(Record):
    name: Text = Field(None, validation_alias=AliasChoices("name", "fieldName", "key"))
    required: Maybe[StrictBool] = True


class Option(Record):
    """One price option of a product: a quote, valid 30 days, whose price an order must repeat exactly."""

    price_option_id: Text = Field(None, validation_alias=AliasChoices("priceOptionId", "priceOptionID"))
    price: Maybe[JsonMoney] = Field(None, validation_alias=AliasChoices("price", "unitPrice"))
    condition: Text = None
    warranty: Text = None
    purchase_choice: Text = Field(None, validation_alias=AliasChoices("purchaseChoice", "purchaseType"))
    supplier: Text = Field(None, validation_alias=AliasChoices("vendorName", "vendor", "supplier"))
    expires_at: Maybe[Timestamp] = Field(
        None, validation_alias=AliasChoices("expiresAt", "expirationDate", "expiration", "validUntil")
    )
    quantity_available: Maybe[Integer] = Field(
        None, validation_alias=AliasChoices("quantityAvailable", "availableQuantity")
    )
    required_fields: Annotated[Rows[_RequiredField], BeforeValidator(_named)] = Field(
        (), validation_alias="requiredFields"
    )

    def shown_condition(self) -> str:
        return clean_text(self.condition or "unstated", 60)

    def shown_choice(self) -> str:
        return clean_text(self.purchase_choice or "Buy", 40)

    def is_repair(self) -> bool:
        return "flat rate repair" in (self.condition or "").casefold()

    def required_names(self) -> list[str]:
        """The fields a flat-rate repair line must carry, as PartsSource names them."""
        return [clean_text(f.name, 60) for f in self.required_fields if f.name is not None and f.required is not False]


class Product(Record):
    """A catalog product: a search hit (no options) or the answer of /catalog/detail (with them)."""

    product_id: Text = Field(None, validation_alias=AliasChoices("productId", "id"))
    part_number: Text = Field(None, validation_alias=AliasChoices("partNumber", "oemPartNumber", "requestedPartNumber"))
    description: Text = Field(None, validation_alias=AliasChoices("description", "name", "title"))
    manufacturer: Text = Field(None, validation_alias=AliasChoices("manufacturer", "manufacturerName"))
    options: Rows[Option] = ()


class Line(Record):
    product_id: Text = Field(None, validation_alias="productId")
    price_option_id: Text = Field(None, validation_alias="priceOptionId")
    part_number: Text = Field(
        None, validation_alias=AliasChoices("partNumber", "requestedPartNumber", "replacementPartNumber")
    )
    description: Text = None
    quantity: Maybe[Integer] = Field(None, validation_alias=AliasChoices("quantity", "qty"))
    price: Maybe[JsonMoney] = Field(None, validation_alias=AliasChoices("price", "unitPrice"))
    total: Maybe[JsonMoney] = Field(None, validation_alias=AliasChoices("extendedPrice", "lineTotal", "total"))
    status: Text = Field(None, validation_alias=AliasChoices("status", "lineStatus"))
    condition: Text = None
    warranty: Text = None
    purchase_choice: Text = Field(None, validation_alias=AliasChoices("purchaseChoice", "purchaseType"))
    supplier: Text = Field(None, validation_alias=AliasChoices("vendorName", "vendor", "supplier"))


class Order(Record):
    """An order as POST /orders, GET /orders/{orderId} or the order search answers it (fields undocumented)."""

    order_id: Text = Field(None, validation_alias=AliasChoices("orderId", "id", "orderNumber"))
    po_number: Text = Field(None, validation_alias=AliasChoices("poNumber", "purchaseOrderNumber", "po"))
    status: Text = Field(None, validation_alias=AliasChoices("status", "orderStatus"))
    lines: Rows[Line] = Field((), validation_alias=AliasChoices("lineItems", "lines", "items", "quoteItems"))
    total: Maybe[JsonMoney] = Field(None, validation_alias=AliasChoices("total", "orderTotal", "grandTotal"))
    subtotal: Maybe[JsonMoney] = None
    created_at: Maybe[Timestamp] = Field(
        None, validation_alias=AliasChoices("createdDate", "createdAt", "orderDate", "created")
    )
    updated_at: Maybe[Timestamp] = Field(
        None, validation_alias=AliasChoices("updatedDate", "updatedAt", "lastModifiedDate")
    )
    notes: Text = None
    shipping_method: Scalar = Field(None, validation_alias="shippingMethod")
    facility_id: Scalar = Field(None, validation_alias="facilityId")
    requester_id: Scalar = Field(None, validation_alias="requesterId")
    use_shipping_account: Scalar = Field(None, validation_alias="useShippingAccount")

    def details(self) -> dict[str, str | int | bool]:
        """The account fields PartsSource echoes, under its names."""
        given = {
            "shippingMethod": self.shipping_method,
            "facilityId": self.facility_id,
            "requesterId": self.requester_id,
            "useShippingAccount": self.use_shipping_account,
        }
        return {name: value for name, value in given.items() if value is not None}
