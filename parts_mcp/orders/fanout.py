"""One vendor's part of a fan-out (look-up, listing): its own deadline, its failure an entry, not an error."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio

from parts_mcp.orders.refusals import refusal
from parts_mcp.orders.results import VendorFailure
from parts_mcp.vendors.base import VendorClient, VendorError

T = TypeVar("T")


async def each_vendor(
    client: VendorClient, call: Awaitable[T], deadline: float, errors: list[VendorFailure]
) -> T | None:
    """`call`'s answer, or None with the failure appended to `errors` (the vendor's own code and words)."""
    try:
        with anyio.fail_after(deadline):
            return await call
    except TimeoutError:
        # What the others answered is shown; the model should say which vendor is missing, not wait longer.
        message = (
            f"{client.display_name} did not answer within {deadline:g}s; the results shown are the other vendors'. "
            f"Ask {client.key} again on its own in a while."
        )
        errors.append(VendorFailure(client.key, "TIMEOUT", message, retryable=True))
    except VendorError as exc:
        advice = refusal(exc, subject=client.key, writes=False)
        errors.append(VendorFailure(client.key, exc.code, exc.message, advice.retryable, advice.retry_after))
    except Exception as exc:
        # One vendor's unreadable answer must not cost the others' results; the details are in the log.
        advice = refusal(exc, subject=client.key, writes=False)
        errors.append(
            VendorFailure(client.key, "INTERNAL", f"{client.display_name}'s answer could not be read: {advice.message}")
        )
    return None
