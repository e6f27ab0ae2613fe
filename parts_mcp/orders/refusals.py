"""The one mapper from a failure to what the caller is told: code, field, message, retry advice.

Tool errors (tool bodies and resolvers alike) and the `vendor_errors` of a fan-out both come from
here, so a code, its field, its retry advice and the rule "say *nothing was ordered* only when the
error proves it" are decided once.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass

from parts_mcp.orders.approvals import ApprovalRefused
from parts_mcp.orders.guard import GuardError
from parts_mcp.orders.ledger import LedgerTampered
from parts_mcp.vendors.base import (
    NotSupported,
    VendorAuthError,
    VendorConflict,
    VendorError,
    VendorInvalidRequest,
    VendorNotFound,
    VendorRateLimited,
    VendorUnavailable,
)

logger = logging.getLogger(__name__)
_TOKEN = re.compile(r"[A-Z][A-Z0-9_]{1,59}")


@dataclass(frozen=True)
class Refusal:
    """`[code] field: message` — what is wrong and what to do next."""

    code: str
    field: str
    message: str
    retryable: bool = False
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"[{self.code}] {self.field}: {self.message}"


# Codes our clients raise for a refusal of their own (never a vendor's code, which is untrusted text).
SPECIFIC_REFUSALS = frozenset({"QUOTE_GONE", "NOTES_TOO_LONG"})


def refusal(exc: BaseException, *, subject: str, writes: bool) -> Refusal:
    """What to tell the caller about `exc`, raised while doing `subject` (a tool name, say).

    `writes` is True for place_order, False for reads (whose failures never speak of orders). A write
    says "Nothing was ordered" only where the error proves it (`nothing_sent`: it came while pricing,
    before any send, or is the vendor's clean refusal of a first send). Every failure after a send
    that may have landed is an `outcome_unknown` result, never an error.
    """
    if isinstance(exc, GuardError):
        field = exc.field or subject
        # Messages often open with their field ("po_number is required"); the prefix names it already.
        return Refusal(exc.code, field, exc.message.removeprefix(f"{field}: ").removeprefix(f"{field} "))
    if isinstance(exc, VendorError):
        return _vendor(exc, subject, writes)
    if isinstance(exc, LedgerTampered):
        return _tampered(exc, writes)
    if isinstance(exc, ApprovalRefused):
        return Refusal(exc.code, "approval_id", f"{exc.message} Nothing was ordered by this call.")
    return _unexpected(exc, subject, writes)


def _unexpected(exc: BaseException, subject: str, writes: bool) -> Refusal:
    # The caller gets a reference, never the exception: its text may quote anything (vendor data
    # included). The log has both, so an operator finds the traceback by the reference a user reports.
    ref = secrets.token_hex(3)
    logger.error("%s failed unexpectedly (ref %s)", subject, ref, exc_info=exc)
    outcome = " Whether the order reached the vendor is not known: check get_order or list_purchase_orders by PO."
    return Refusal(
        "INTERNAL",
        subject,
        f"an unexpected error occurred (ref {ref}). The server's log has the details under that ref."
        + (outcome if writes else " Try again."),
    )


def _vendor(exc: VendorError, subject: str, writes: bool) -> Refusal:
    where = "vendor"
    outcome = ""
    if writes and exc.nothing_sent:
        outcome = " Nothing was ordered."
    elif writes and exc.maybe_committed:
        outcome = " The order may exist at the vendor: check get_order by PO before anything else."
    if isinstance(exc, NotSupported):
        return Refusal("NOT_SUPPORTED", where, f"{exc.vendor}: {exc.message}")
    if isinstance(exc, VendorAuthError):
        return Refusal(
            "VENDOR_AUTH",
            where,
            f"{exc.vendor}: {_sentence(exc.message)}{outcome} The server's credentials for {exc.vendor!r} need "
            "fixing by an administrator; retrying will not help.",
        )
    if isinstance(exc, VendorInvalidRequest):
        # A client's own specific code (a quote withdrawn, notes too long) says more than the generic one.
        code = exc.code if exc.code in SPECIFIC_REFUSALS else "VENDOR_REJECTED"
        return Refusal(code, exc.field or where, f"{_sentence(exc.message)}{outcome} Change that value and try again.")
    if isinstance(exc, VendorNotFound):
        field = "order_id" if subject == "get_order" else where
        return Refusal(
            "NOT_FOUND",
            field,
            f"{exc.vendor}: {_sentence(exc.message)} Check the id (list_purchase_orders shows the ids).",
        )
    if isinstance(exc, VendorConflict):
        return Refusal("VENDOR_CONFLICT", where, f"{exc.vendor} said {exc.code}: {_sentence(exc.message)}{outcome}")
    if isinstance(exc, VendorRateLimited):
        after = f"in {exc.retry_after:g}s" if exc.retry_after is not None else "shortly"
        return Refusal(
            "RATE_LIMITED",
            where,
            f"{exc.vendor} is rate limiting.{outcome} Try again {after}.",
            retryable=True,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, VendorUnavailable):
        after = f"in {exc.retry_after:g}s" if exc.retry_after is not None else "in a minute"
        # A call held by the open circuit never reached the vendor: the vendor said nothing.
        said = f"{exc.vendor} said {exc.code}: " if exc.status is not None else f"{exc.vendor}: "
        return Refusal(
            "VENDOR_UNAVAILABLE",
            where,
            f"{said}{_sentence(exc.message)}{outcome} Try again {after}.",
            retryable=True,
            retry_after=exc.retry_after,
        )
    again = " Try again in a minute." if exc.retryable else " Check the request, or ask an administrator."
    code = exc.code if _TOKEN.fullmatch(exc.code) else exc.default_code
    return Refusal(code, where, f"{exc.vendor}: {_sentence(exc.message)}{outcome}{again}", exc.retryable)


def _tampered(exc: LedgerTampered, writes: bool) -> Refusal:
    outcome = ""
    if writes:
        outcome = (
            " The vendor had been called before the change was found: its answer is kept in the audit log. "
            "Do not place this order again until an operator has checked it."
            if exc.sent
            else " Nothing was sent."
        )
    return Refusal(
        "LEDGER_TAMPERED",
        "po_number",
        f"{exc.vendor} PO {exc.po_number!r}: {_sentence(exc.reason)} An operator must check this intent "
        f"(parts-mcp audit verify; parts-mcp intents list).{outcome}",
    )


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", "…")) else text + "."
