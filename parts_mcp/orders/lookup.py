"""Looking parts up at every vendor at once, with a second look for what nobody found."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import anyio

from parts_mcp.domain import LookupResult, Suggestion
from parts_mcp.orders.fanout import each_vendor
from parts_mcp.orders.guard import GuardError
from parts_mcp.orders.parts import PartCache
from parts_mcp.orders.results import LookupOutcome, VendorFailure
from parts_mcp.vendors._search import MAX_SUGGESTED_QUERIES
from parts_mcp.vendors.base import VendorClient, VendorError, clean_text

logger = logging.getLogger(__name__)

MAX_QUERIES = 200
# A vendor that missed more queries than this is being bulk-checked, not searched: no second look there.
MAX_LOOKED_AGAIN = MAX_SUGGESTED_QUERIES
MAX_SUGGESTIONS = 3  # per not-found query, across vendors


class Lookup:
    def __init__(self, parts: PartCache, deadline: float) -> None:
        self._parts = parts
        self._deadline = deadline

    async def __call__(self, queries: Sequence[str], clients: Sequence[VendorClient]) -> LookupOutcome:
        """Ask every client at once; each under its own deadline, a failure costs only that vendor."""
        wanted = list(dict.fromkeys(q for q in (clean_text(q, 120) for q in queries) if q))
        if not wanted:
            raise GuardError("query: give at least one part number or name.", field="query")
        if len(wanted) > MAX_QUERIES:
            raise GuardError(f"query: at most {MAX_QUERIES} entries per call.", field="query")
        errors: list[VendorFailure] = []
        started = anyio.current_time()
        firsts: dict[str, LookupResult] = {}

        async def ask(client: VendorClient) -> None:
            if not client.capabilities.lookup:
                errors.append(
                    VendorFailure(client.key, "NOT_SUPPORTED", f"{client.display_name} cannot look up parts.")
                )
                return
            result = await each_vendor(client, client.lookup(wanted), self._deadline, errors)
            if result is not None:
                firsts[client.key] = result

        async with anyio.create_task_group() as group:
            for client in clients:
                group.start_soon(ask, client)
        # A second look only for what nobody found: a near miss elsewhere is no use once a vendor has the part.
        missed = {q.casefold() for q in wanted if firsts and all(_missed(r, q) for r in firsts.values())}
        results = dict(firsts)

        async def again(client: VendorClient) -> None:
            results[client.key] = await self._look_again(client, wanted, firsts[client.key], missed, started)

        async with anyio.create_task_group() as group:
            for client in clients:
                if client.key in firsts:
                    group.start_soon(again, client)
        return self._outcome(wanted, clients, results, errors)

    def _outcome(
        self,
        wanted: Sequence[str],
        clients: Sequence[VendorClient],
        results: Mapping[str, LookupResult],
        errors: list[VendorFailure],
    ) -> LookupOutcome:
        order = {c.key: i for i, c in enumerate(clients)}
        parts = [p for key in sorted(results, key=order.__getitem__) for p in results[key].parts]
        for part in parts:
            self._parts.put(part)
        errors.sort(key=lambda e: order[e.vendor])
        not_found = [q for q in wanted if results and all(_missed(r, q) for r in results.values())]
        suggestions = [s for r in results.values() for s in r.suggestions]
        return LookupOutcome(
            parts=parts, not_found=not_found, vendor_errors=errors, suggestions=_nearest(suggestions, not_found, order)
        )

    async def _look_again(
        self, client: VendorClient, wanted: Sequence[str], first: LookupResult, missed: set[str], started: float
    ) -> LookupResult:
        """One more round at this vendor for what nobody found, within what is left of its deadline.

        Best effort: a failure or a timeout here costs only what the second round would have added.
        """
        deadline = started + self._deadline
        again = [q for q in wanted if q.casefold() in missed and _missed(first, q)]
        if not again or len(again) > MAX_LOOKED_AGAIN:
            return first
        second: LookupResult | None = None
        with anyio.move_on_after(deadline - anyio.current_time()):
            try:
                second = await client.look_again(again)
            except VendorError as exc:
                logger.info("second look-up at %s failed: %s", client.key, exc.code)
            except Exception:
                logger.exception("second look-up at %s failed", client.key)
        if second is None:
            return first
        found_again = {q.casefold() for q in again} - {q.casefold() for q in second.not_found}
        known = {p.part_id for p in first.parts}
        return LookupResult(
            parts=[*first.parts, *(p for p in second.parts if p.part_id not in known)],
            not_found=[q for q in first.not_found if q.casefold() not in found_again],
            suggestions=[*first.suggestions, *second.suggestions],
        )


def _nearest(
    suggestions: Sequence[Suggestion], not_found: Sequence[str], vendors: Mapping[str, int]
) -> list[Suggestion]:
    """The few best suggestions for each not-found query, across vendors, in the order of `not_found`."""
    chosen: dict[str, list[Suggestion]] = {q.casefold(): [] for q in not_found}
    for suggestion in sorted(suggestions, key=lambda s: (-s.similarity, vendors.get(s.vendor, 0), s.part_number)):
        picked = chosen.get(suggestion.query.casefold())
        duplicate = picked is not None and any(
            (s.vendor, s.part_number) == (suggestion.vendor, suggestion.part_number) for s in picked
        )
        if picked is not None and not duplicate and len(picked) < MAX_SUGGESTIONS:
            picked.append(suggestion)
    return [s for q in not_found for s in chosen[q.casefold()]]


def _missed(result: LookupResult, query: str) -> bool:
    return query.casefold() in {q.casefold() for q in result.not_found}
