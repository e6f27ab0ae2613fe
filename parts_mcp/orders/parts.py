"""Which part each part_id names: recent look-ups first, else found again at the vendor.

A part_id works in any server process (a fresh stdio process per call, another replica): what this
process has not seen is re-found at the vendor from the id alone, and the vendor prices it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

from parts_mcp.domain import Part
from parts_mcp.orders.guard import GuardError, content_hash
from parts_mcp.vendors.base import OrderRequest, VendorClient, clean_text
from parts_mcp.vendors.part_ids import PartResolver


class PartCache:
    """Offers from recent look-ups: a preview needs no vendor round trip to know what an id names."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._parts: OrderedDict[tuple[str, str], Part] = OrderedDict()

    def put(self, part: Part) -> None:
        key = (part.vendor, part.part_id)
        self._parts[key] = part
        self._parts.move_to_end(key)
        while len(self._parts) > self._capacity:
            self._parts.popitem(last=False)

    def get(self, vendor: str, part_id: str) -> Part | None:
        return self._parts.get((vendor, part_id))

    async def known(self, client: VendorClient, request: OrderRequest) -> dict[str, Part]:
        """The part each item names.

        Raises:
            GuardError: an item names no part the vendor offers now (UNKNOWN_PART, the item named).
        """
        known: dict[str, Part] = {}
        missing: list[str] = []
        for item in request.items:
            part = self.get(client.key, item.part_id)
            if part is None:
                missing.append(item.part_id)
            else:
                known[item.part_id] = part
        if missing:
            known |= await self._refind(client, missing)
        for index, item in enumerate(request.items):
            if item.part_id not in known:
                raise GuardError(
                    f"items[{index}].part_id {clean_text(item.part_id, 60)!r} names no part {client.display_name} "
                    "offers now (not a part_id from lookup_parts, or the offer is gone). Call lookup_parts and use a "
                    "part_id from its results.",
                    field=f"items[{index}].part_id",
                    code="UNKNOWN_PART",
                )
        return known

    async def _refind(self, client: VendorClient, part_ids: Sequence[str]) -> dict[str, Part]:
        """Offers for part_ids this process has not looked up (another process did, or it restarted).

        A self-describing part_id is re-found at the vendor from the id alone; what is left is tried
        as a part number, forgiven when it names exactly one part. Either way the vendor prices it.
        """
        found = await client.resolve_parts(part_ids) if isinstance(client, PartResolver) else {}
        rest = [part_id for part_id in part_ids if part_id not in found]
        if rest:
            looked_up = await client.lookup(rest)
            for part in looked_up.parts:
                self.put(part)
            for part_id in rest:
                matches = [p for p in looked_up.parts if p.part_number.casefold() == part_id.casefold()]
                if len(matches) == 1:
                    found[part_id] = matches[0]
        for part in found.values():
            self.put(part)
        return found


def identity_hash(client: VendorClient, request: OrderRequest, parts: Mapping[str, Part]) -> str:
    """The content hash one PO number is bound to: for vendors whose part_ids are short-lived tokens,
    the same order under fresh tokens is still the same order."""
    if not client.capabilities.ephemeral_part_ids:
        return content_hash(request)
    return content_hash(request, {part_id: f"#{part.part_number}" for part_id, part in parts.items()})
