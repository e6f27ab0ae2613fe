"""Self-describing part_ids: any server process can re-find an offer at its vendor from the id alone.

A model may look a part up in one server process and order it in another (a client that starts a
process per tool call, or replicas that share nothing), so a part_id names the offer by the vendor's
own stable keys (a part number, a record id, a product plus its price option), never by a price:
the vendor stays the source of truth, and an edited id can only name another offer, priced by the
vendor again. Fields are percent-encoded and joined by ":", so the id is URL and JSON safe and
as short as the keys themselves (a model copies it character by character).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import quote, unquote

from parts_mcp.domain import Part

SEPARATOR = ":"


def encode(*fields: str) -> str:
    """The id for an offer named by these vendor keys, each percent-encoded (a ":" inside one cannot split it)."""
    return SEPARATOR.join(quote(field, safe="") for field in fields)


def decode(part_id: str, fields: int) -> tuple[str, ...] | None:
    """The `fields` vendor keys an id encodes, or None when it is not such an id."""
    parts = part_id.split(SEPARATOR)
    if len(parts) != fields or not all(parts):
        return None
    return tuple(unquote(part) for part in parts)


@runtime_checkable
class PartResolver(Protocol):
    """A vendor client that re-finds offers from part_ids alone (a look-up this process never saw)."""

    async def resolve_parts(self, part_ids: Sequence[str]) -> dict[str, Part]:
        """The vendor's current offer for each part_id it can decode, keyed by the id as given.

        Ids it cannot decode, and offers the vendor no longer has, are left out: the caller then
        tries them as part numbers, or refuses them.
        """
        ...
