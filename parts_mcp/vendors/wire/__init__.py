"""The edge of every vendor client: a vendor's JSON becomes typed wire models here, or a clear error.

Each vendor module declares pydantic models for the answers it reads (subclasses of `Wire`, or of
`Record` where a null field means "not sent"), with aliases for the spellings its documents show
(`Field(validation_alias=AliasChoices(...))`) and the field types below, then reads them with `read`.
Client code reads attributes, never dicts; an answer that does not fit is a `VendorBadResponse`
(which, for a write, means the order may exist), never a KeyError deep in a method.

Tolerance is declared, not hand-written: where a vendor's documents leave a shape open, a field is
`Maybe[...]` (what cannot be read counts as absent), a list is `Rows[...]` (what cannot be read is
skipped, not its neighbours) or `Objects[...]` (where a record that does not fit must be refused), and
text is `Text` (a number reads as its text). An odd optional value never sinks an answer; a field the
client cannot do without (`Id`, `Label`) still does.

A vendor's models live in `parts_mcp.vendors.wire.<kind>`, which its client names through a `LazyModule`: the
module is imported when the client first reads an answer. Creating some seventy pydantic classes is a
third of a production start's own cost, and a start reads no answer.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import ModuleType
from typing import Annotated, Any, ClassVar, TypeGuard, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from parts_mcp.domain import Money
from parts_mcp.vendors import _parse
from parts_mcp.vendors.base import VendorBadResponse

T = TypeVar("T")
W = TypeVar("W", bound=BaseModel)


class LazyModule:
    """Stands in for a module until an attribute is first read from it, which imports it.

    Not `importlib.util.LazyLoader`: on Python 3.11 two threads reading it first can both run the module
    (gh-114763). The first reads go through `importlib.import_module`, whose import lock runs it once and
    returns only a module that has run to its end; that module is then kept. A mistake in a wire module
    shows at its vendor's first answer, not at start: each vendor's tests read every answer model.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<LazyModule {self._name!r}>"


def is_object(value: Any) -> TypeGuard[dict[str, Any]]:
    """Whether `value` is a JSON object."""
    return isinstance(value, dict)


def is_array(value: Any) -> TypeGuard[list[Any]]:
    """Whether `value` is a JSON array."""
    return isinstance(value, list)


class Wire(BaseModel):
    """A vendor answer as read: unknown fields ignored (vendors add fields), aliases or names accepted."""

    # Built on first use: a production start imports every vendor module and reads none of their answers yet.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True, defer_build=True)

    nulls_missing: ClassVar[bool] = False
    """A null field counts as one not sent: its default applies, and an alias falls through to the next spelling."""
    empty_if_not_object: ClassVar[bool] = False
    """Anything but a JSON object (null, an array, text) reads as `{}`: for answers read only as far as they go."""

    @model_validator(mode="before")
    @classmethod
    def _as_declared(cls, data: Any) -> Any:
        # Runs after a subclass's own before-validators, so those see the answer as sent.
        if not is_object(data):
            return {} if cls.empty_if_not_object else data
        return {key: value for key, value in data.items() if value is not None} if cls.nulls_missing else data


class Record(Wire):
    """A vendor object whose null fields count as not sent (see `Wire.nulls_missing`)."""

    nulls_missing = True


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


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


def _readable_rows(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if not is_array(value):
        return ()
    rows: list[Any] = []
    for row in value:
        try:
            rows.extend(handler([row]))
        except ValidationError:
            continue
    return tuple(rows)


def _objects(value: Any) -> list[Any]:
    return [entry for entry in value if is_object(entry)] if is_array(value) else []


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


def _label(value: Any) -> str:
    # Part numbers and names come as JSON numbers in some records: 12345 is the text "12345".
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise ValueError("not text")


def _id(value: Any) -> str:
    # Ids come as strings or integers; a float or anything else is no id (12.0 would not name 12).
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise ValueError("not an id")


Maybe = Annotated[T | None, WrapValidator(_or_none)]
"""An optional field: absent, null or a value that cannot be read as `T` is None."""
Rows = Annotated[tuple[T, ...], WrapValidator(_readable_rows)]
"""The entries of a JSON array that read as `T`, others skipped; missing, null or not an array is `()`."""
Objects = Annotated[tuple[T, ...], BeforeValidator(_objects)]
"""The objects of a JSON array, each of which must read as `T` (a record that does not fit its documents is
refused, not skipped); entries that are not objects are passed over; missing, null or not an array is `()`."""
Label = Annotated[str, BeforeValidator(_label)]
"""Text that must be there (a part number): a non-empty string as sent, or a number as its text."""
Text = Maybe[Label]
"""Optional vendor text as sent (cleaned where it becomes ours); a number reads as its text; None when
absent, empty, or not text at all (an object, an array, a boolean)."""
Id = Annotated[str, BeforeValidator(_id)]
"""An id, from a non-empty string or an integer, kept exactly (never cleaned or altered)."""
Amount = Annotated[Decimal, BeforeValidator(_exact)]
"""An exact amount from a JSON number or decimal string (floats via their decimal text)."""
Integer = Annotated[int, BeforeValidator(_integer)]
"""A whole number from a JSON integer, an integral float or a digit string; booleans refused."""
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
"""ISO 8601 (Z, offset, or naive as UTC) or epoch seconds / milliseconds, always timezone-aware."""


class JsonMoney(Wire):
    """Money as vendors put it in JSON: a bare number or decimal string in major units (the currency is the
    account's), or an `{amount, currency}` object. Exact: a float goes through its decimal text."""

    amount: Amount
    currency: Text = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        return value if is_object(value) else {"amount": value}

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("not a finite amount")
        return value

    def money(self, currency: str) -> Money | None:
        """As Money in `currency` unless it names its own; None for a currency that is no ISO code.

        Padded to the minor unit (1250.0 is 1250.00), but never rounded: a digit the vendor sent stays.
        """
        try:
            value = Money(amount=self.amount, currency=self.currency or currency)
        except ValueError:
            return None
        rounded = value.rounded()
        return rounded if rounded.amount == value.amount else value
