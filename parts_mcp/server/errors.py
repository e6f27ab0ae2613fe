"""The one place where failures become tool errors the model can act on.

The test is the SDK's: could a smarter model have avoided this? Then say what to change. Every
message is ours or sanitized vendor text; no raw vendor body, stack trace or secret gets through.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from mcp import MCPError
from mcp.server.mcpserver.exceptions import ToolError

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
R = TypeVar("R")


def describe(exc: Exception) -> str:
    """The message a model sees for a failure: what happened, the field at fault, what to do next."""
    if isinstance(exc, GuardError):
        return f"[{exc.code}] {exc.message}"
    if isinstance(exc, NotSupported):
        return f"[NOT_SUPPORTED] {exc.message}"
    if isinstance(exc, VendorAuthError):
        return (
            f"[VENDOR_AUTH] {exc.message} Nothing was ordered. The server's credentials for {exc.vendor!r} "
            "need fixing by an administrator; retrying will not help."
        )
    if isinstance(exc, VendorInvalidRequest):
        where = f" (field: {exc.field})" if exc.field else ""
        return f"[VENDOR_REJECTED{where}] {exc.message} Nothing was ordered."
    if isinstance(exc, VendorNotFound):
        return f"[NOT_FOUND] {exc.message}"
    if isinstance(exc, VendorConflict):
        return f"[VENDOR_CONFLICT: {exc.code}] {exc.message} Nothing was ordered."
    if isinstance(exc, VendorRateLimited):
        after = f" Try again in {exc.retry_after:g}s." if exc.retry_after is not None else " Try again shortly."
        return f"[RATE_LIMITED] {exc.vendor} is rate limiting.{after}"
    if isinstance(exc, VendorUnavailable):
        done = " Nothing was ordered." if exc.not_processed else ""
        return f"[VENDOR_UNAVAILABLE: {exc.code}] {exc.message}{done} It is safe to try again in a minute."
    if isinstance(exc, VendorError):
        return f"[{exc.code}] {exc.message}"
    return "Internal error in parts-mcp; it has been logged. Nothing further is known about the outcome."


def tool_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wrap a tool or resolver so every failure reaches the model as a ToolError with our message."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (ToolError, MCPError):
            raise
        except (GuardError, VendorError) as exc:
            logger.info("%s refused: %s", fn.__name__, getattr(exc, "code", type(exc).__name__))
            raise ToolError(describe(exc)) from exc
        except Exception as exc:
            logger.exception("%s failed unexpectedly", fn.__name__)
            raise ToolError(describe(exc)) from exc

    return wrapper
