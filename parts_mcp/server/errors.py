"""The one place where failures become tool errors the model can act on.

Every refusal reads `[CODE] field: what is wrong. What to do next.` — our own refusals, vendor
failures, and the arguments the SDK rejects before any of our code runs. The test is the SDK's:
could a smarter model have avoided this? Then say what to change. Every message is ours or
sanitized vendor text; no raw vendor body, stack trace or secret gets through.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, InputRequiredResult, TextContent
from pydantic import ValidationError

from parts_mcp.orders.refusals import Refusal, refusal
from parts_mcp.redact import finder
from parts_mcp.untrusted import clean_text

logger = logging.getLogger(__name__)
MIN_SECRET_LENGTH = 6  # shorter values (a test's "x") would blank ordinary words


def error_result(code: str, field: str, message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=f"[{code}] {field}: {message}")], is_error=True)


def describe(exc: BaseException, *, tool: str, writes: bool) -> CallToolResult:
    """The tool error a model sees for a failure of `tool` (reads never speak of orders)."""
    return error_result_of(refusal(exc, subject=tool, writes=writes))


def error_result_of(found: Refusal) -> CallToolResult:
    return error_result(found.code, found.field, found.message)


def invalid_arguments(exc: ValidationError, schema: Mapping[str, Any]) -> CallToolResult:
    """Arguments the SDK's validation refused, in our words: each field, what is wrong, what it takes."""
    problems: list[str] = []
    for error in exc.errors(include_url=False)[:5]:
        loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
        field = _path(loc) or "arguments"
        problems.append(f"{field}: {_what(error, loc, schema)}.")
    code = "MISSING_ARGUMENT" if all(e["type"] == "missing" for e in exc.errors()) else "INVALID_ARGUMENT"
    first, *rest = problems
    text = first + "".join(f" Also {p}" for p in rest) + " Fix the arguments and call the tool again."
    field, message = text.split(": ", 1)
    return error_result(code, field, message)


def _what(error: Any, loc: list[int | str], schema: Mapping[str, Any]) -> str:
    node = _at(schema, loc)
    kind = error["type"]
    if kind == "missing":
        hint = node.get("description") if node else None
        return "is required" + (f" ({hint})" if hint else "")
    if kind == "extra_forbidden":
        accepted = ", ".join(_at(schema, loc[:-1]).get("properties", {}))
        return f"is not accepted here: remove {loc[-1]}; accepted: {accepted}"
    got = clean_text(repr(error.get("input")), 60)
    if node and node.get("properties") and kind != "value_error":
        return f"should be an object with {', '.join(node['properties'])} (got {got})"
    expected = f"; expected {node['description']}" if node and node.get("description") else ""
    return f"{_message(error['msg'])} (got {got}){expected}"


def _at(schema: Mapping[str, Any], loc: list[int | str]) -> Mapping[str, Any]:
    """The (lean, inlined) schema node at a validation error's location; {} where it cannot be followed."""
    node: Mapping[str, Any] = schema
    for part in loc:
        node = node.get("items", {}) if isinstance(part, int) else node.get("properties", {}).get(part, {})
    return node


def unknown_arguments(names: Iterable[str], allowed: Iterable[str]) -> CallToolResult:
    wrong = sorted(names)
    return error_result(
        "UNKNOWN_ARGUMENT",
        wrong[0],
        f"this tool takes no argument {' or '.join(map(repr, wrong))}. Valid arguments: {', '.join(sorted(allowed))}. "
        "Call the tool again with those only.",
    )


def unknown_tool(name: str, known: Iterable[str]) -> CallToolResult:
    return error_result(
        "UNKNOWN_TOOL", "name", f"there is no tool {clean_text(name, 60)!r}. Tools: {', '.join(sorted(known))}."
    )


def _path(loc: list[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(msg: str) -> str:
    # pydantic's wording, made to read after a field name ("Input should be ..." -> "should be ...").
    msg = msg.removeprefix("Value error, ").replace("a valid boolean", "true or false")
    return msg[len("Input ") :] if msg.startswith("Input ") else msg[:1].lower() + msg[1:]


def root_cause(exc: BaseException) -> BaseException:
    """What our code raised, under the SDK's ToolError wrappers ("Error executing tool ...").

    The SDK's own resolver failures (a form answer it could not read) are themselves the cause.
    """
    while isinstance(exc, ToolError) and exc.__cause__ is not None and not _sdk_resolver_failure(exc):
        exc = exc.__cause__
    return exc


def _sdk_resolver_failure(exc: BaseException) -> bool:
    return isinstance(exc, ToolError) and str(exc).startswith("Resolver ")


def confirmation_failed() -> CallToolResult:
    return error_result(
        "CONFIRMATION_FAILED",
        "confirmation",
        "the answer to the confirmation form could not be read, so nothing was ordered. Call place_order again "
        "with the same arguments to ask the user again.",
    )


class Redactor:
    """Blanks out configured secrets wherever text leaves the server: the last line of defence.

    Vendor clients already redact what they know (keys, current tokens); vendor text can still
    quote a credential in places they do not see, so every tool result and error passes here too,
    through the same finder (`parts_mcp.redact`): a long secret in any spelling, a short one exactly.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._finder = finder(secrets, exact_min=MIN_SECRET_LENGTH)

    def text(self, value: str) -> str:
        return self._finder.redact(value)

    def result(self, value: Any) -> Any:
        """A tool's result, or the form it puts in front of the human (an InputRequiredResult), redacted."""
        if not self._finder or not isinstance(value, CallToolResult | InputRequiredResult):
            return value
        dumped = value.model_dump(by_alias=True)
        # One look at the whole result first: nearly all hold no secret and pass on as they are.
        if not self._finder.found_in_json(json.dumps(dumped, ensure_ascii=False, default=str)):
            return value
        # Each string on its own: a secret is blanked where it stands, keys included (vendor extras).
        return type(value).model_validate(self._walk(dumped))

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(key)): self._walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        return value
