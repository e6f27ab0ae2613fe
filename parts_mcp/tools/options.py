"""place_order's `options`: every vendor's order options in one declared shape.

Declared (not a free-form object) so strict function-calling converters keep them usable; each
vendor still validates what it takes (list_vendors says what that is). Lists of small records
replace the vendors' keyed mappings, which a strict schema cannot express; the mapping forms the
vendor documents show are still accepted, and `for_vendor` turns the lists back into them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from parts_mcp.domain import Model

# Addresses and references are often numbers in the vendors' own examples (postalCode 123456).
Value = str | int
Text = Annotated[Value | None, Field(default=None)]


def _also(name: str, camel: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(name, camel))


def _pairs(value: Any, *names: str) -> Any:
    """{"A": "x"} -> [{names[0]: "A", names[1]: "x"}]: a vendor's mapping form, in the declared list form."""
    if not isinstance(value, dict):
        return value
    listed: list[Any] = []
    for key, inner in value.items():  # type: ignore[misc]
        if isinstance(inner, dict):  # keyed by part_id: {"PART_ID": {"VIN": "..."}}
            listed += [{"part_id": key, **row} for row in _pairs(inner, *names)]
        elif isinstance(inner, list):  # {"PART_ID": [{"type": "VIN", "value": "..."}]}
            listed += [{"part_id": key, **row} for row in inner if isinstance(row, dict)]  # type: ignore[misc]
        else:
            listed.append({names[0]: key, names[1]: inner})
    return listed


class _Strict(Model):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, json_schema_extra=Model.model_config.get("json_schema_extra")
    )


class ShippingAddress(_Strict):
    name: Text
    address1: Text
    city: Text
    state: Text
    postal_code: Value | None = _also("postal_code", "postalCode")
    country: Text


class Contact(_Strict):
    name: Text
    phone: Text
    email: Text
    company_name: Value | None = _also("company_name", "companyName")


class DeliveryAddress(_Strict):
    street_name: Value | None = _also("street_name", "streetName")
    postal_code: Value | None = _also("postal_code", "postalCode")
    city: Text
    country_code: Value | None = _also("country_code", "countryCode")


class VehicleReference(_Strict):
    type: str = Field(description="VIN or KEYNUMBER")
    value: Value
    part_id: str | None = Field(default=None, description="Only this line; default all")


class RequiredField(_Strict):
    part_id: str
    name: str = Field(description="e.g. serialNumber")
    value: str | int | float


class OrderOptions(_Strict):
    """Every vendor's order options; each vendor takes its own (list_vendors)."""

    supplier_id: str | None = None
    priority: str | None = Field(default=None, description="low|normal|high|urgent|critical")
    requested_delivery_date: str | None = Field(default=None, description="YYYY-MM-DD")
    requires_approval: StrictBool | None = None
    justification: str | None = None
    shipping_address: ShippingAddress | None = None
    order_type: str | None = Field(default=None, description="EMG|VOR|STK|DPO|COL")
    vehicle_references: Annotated[
        list[VehicleReference] | None, BeforeValidator(lambda v: _pairs(v, "type", "value"))
    ] = None
    contact: Contact | None = None
    delivery_address: DeliveryAddress | None = None
    shipping_method: str | None = None
    use_shipping_account: StrictBool | None = None
    required_fields: Annotated[list[RequiredField] | None, BeforeValidator(lambda v: _pairs(v, "name", "value"))] = None

    @model_validator(mode="after")
    def _one_value_each(self) -> OrderOptions:
        # Two values for one thing would silently lose one of them.
        refs = [(r.part_id, r.type.casefold()) for r in self.vehicle_references or ()]
        if len(refs) != len(set(refs)):
            raise ValueError("vehicle_references gives two values of one type for the same line")
        fields = [(f.part_id, f.name) for f in self.required_fields or ()]
        if len(fields) != len(set(fields)):
            raise ValueError("required_fields gives one field twice for the same part_id")
        return self

    def for_vendor(self, part_ids: Sequence[str]) -> dict[str, Any]:
        """The options in the form the vendor clients read; references for every line are given to each line."""
        options = self.model_dump(exclude_none=True, exclude={"vehicle_references", "required_fields"})
        refs = self.vehicle_references or []
        if refs and any(r.part_id for r in refs):
            lines = dict.fromkeys([*part_ids, *(r.part_id for r in refs if r.part_id)])
            by_line = {line: {r.type: r.value for r in refs if r.part_id in (None, line)} for line in lines}
            options["vehicle_references"] = {line: given for line, given in by_line.items() if given}
        elif refs:
            options["vehicle_references"] = {r.type: r.value for r in refs}
        if self.required_fields:
            fields = self.required_fields
            options["required_fields"] = {
                f.part_id: {x.name: x.value for x in fields if x.part_id == f.part_id} for f in fields
            }
        return options
