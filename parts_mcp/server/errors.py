"""The one place where failures become tool errors the model can act on.

The test is the SDK's: could a smarter model have avoided this? Then say what to change. Every
message is ours or sanitized vendor text; no raw vendor body, stack trace or secret gets through.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from mcp import MCPError
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult

from parts_mcp.orders.guard import GuardError
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
P = ParamSpec("P")
MIN_SECRET_LENGTH = 6  # shorter values (a test's "x") would blank ordinary words
R = TypeVar("R")


def describe(exc: Exception) -> str:
    """The message a model sees for a failure: what happened, the field at fault, what to do next."""
    if isinstance(exc, GuardError):
        return f"[{exc.code}] {exc.message}"
    if isinstance(exc, NotSupported):
        return f"[NOT_SUPPORTED] {exc.message}"
    if not isinstance(exc, VendorError):
        return "Internal error in parts-mcp; it has been logged. Nothing further is known about the outcome."
    # Only an error that proves nothing was written may say so (a key conflict, say, proves the opposite).
    outcome = " The order may exist at the vendor." if exc.maybe_committed else " Nothing was ordered."
    if isinstance(exc, VendorAuthError):
        return (
            f"[VENDOR_AUTH] {exc.message}{outcome} The server's credentials for {exc.vendor!r} "
            "need fixing by an administrator; retrying will not help."
        )
    if isinstance(exc, VendorInvalidRequest):
        where = f" (field: {exc.field})" if exc.field else ""
        return f"[VENDOR_REJECTED{where}] {exc.message}{outcome}"
    if isinstance(exc, VendorNotFound):
        return f"[NOT_FOUND] {exc.message}"
    if isinstance(exc, VendorConflict):
        return f"[VENDOR_CONFLICT: {exc.code}] {exc.message}{outcome}"
    if isinstance(exc, VendorRateLimited):
        after = f" Try again in {exc.retry_after:g}s." if exc.retry_after is not None else " Try again shortly."
        return f"[RATE_LIMITED] {exc.vendor} is rate limiting.{after}"
    if isinstance(exc, VendorUnavailable):
        # Writes that may have landed become outcome_unknown before this point; this is a read, or nothing landed.
        done = " Nothing was ordered." if exc.not_processed else ""
        return f"[VENDOR_UNAVAILABLE: {exc.code}] {exc.message}{done} It is safe to try again in a minute."
    return f"[{exc.code}] {exc.message}"


class Redactor:
    """Blanks out configured secrets wherever text leaves the server: the last line of defence.

    Vendor clients already redact what they know (keys, current tokens); vendor text can still
    quote a credential in places they do not see, so every tool result and error passes here too.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is blanked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, "***")
        return value

    def result(self, value: Any) -> Any:
        if not self._secrets or not isinstance(value, CallToolResult):
            return value
        # Each string on its own: in a JSON dump a secret with a quote or backslash would be escaped, and missed.
        return CallToolResult.model_validate(self._walk(value.model_dump(by_alias=True)))

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self._walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        return value


@contextmanager
def boundary(redactor: Redactor | None = None) -> Iterator[None]:
    """Turn whatever the body raises into a ToolError with our message, secrets blanked out."""
    redact = redactor or Redactor()
    try:
        yield
    except MCPError:
        raise
    except ToolError as exc:
        raise ToolError(redact.text(str(exc))) from exc
    except (GuardError, VendorError) as exc:
        logger.info("refused: %s", getattr(exc, "code", type(exc).__name__))
        raise ToolError(redact.text(describe(exc))) from exc
    except Exception as exc:
        logger.exception("failed unexpectedly")
        raise ToolError(describe(exc)) from exc


def tool_errors(fn: Callable[P, Awaitable[R]], redactor: Redactor | None = None) -> Callable[P, Awaitable[R]]:
    """Wrap a tool: every failure reaches the model as a ToolError, and no configured secret appears
    in its result or its errors."""
    redact = redactor or Redactor()

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with boundary(redact):
            return redact.result(await fn(*args, **kwargs))

    return wrapper
