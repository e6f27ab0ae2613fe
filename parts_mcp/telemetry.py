"""What an operator measures: Prometheus metrics, and the OpenTelemetry span around each vendor call.

The metrics live in one registry of our own (served at /metrics over HTTP by `server.operations`),
through `prometheus-client` rather than a hand-written exposition format. Labels are tool names,
error codes, vendor keys and decision names only: never a PO number, a person or an id.

Spans go through the OpenTelemetry API (installed with the MCP SDK, which makes a span per tool
call): a vendor call is a child of its tool call's span. Nothing is exported unless the embedding
process installs an OpenTelemetry SDK and exporter; without one every call here is a no-op.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass

import stamina.instrumentation
from opentelemetry import trace
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)

__all__ = ["REGISTRY", "VendorCall", "order_decided", "path_template", "tool_called", "vendor_call"]

disable_created_metrics()  # no `*_created` twin of every series: Prometheus computes rates without them
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # memory, CPU, open files: the usual process_* series

TOOL_CALLS = Counter(
    "parts_mcp_tool_calls",
    "Tool calls by tool and outcome (ok, error, input_required)",
    ["tool", "outcome"],
    registry=REGISTRY,
)
TOOL_ERRORS = Counter(
    "parts_mcp_tool_errors", "Tool errors by tool and error code", ["tool", "code"], registry=REGISTRY
)
VENDOR_SECONDS = Histogram(
    "parts_mcp_vendor_request_seconds",
    "One logical vendor request (retries and their waits included), by vendor",
    ["vendor"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
CIRCUIT_OPEN = Gauge(
    "parts_mcp_vendor_circuit_open",
    "1 while the vendor's circuit breaker holds calls back (as of its last call), else 0",
    ["vendor"],
    registry=REGISTRY,
)
ORDER_DECISIONS = Counter(
    "parts_mcp_order_decisions",
    "Order decisions (previewed, sent, placed, refused, ...) by vendor",
    ["vendor", "decision"],
    registry=REGISTRY,
)

# Our retry line (vendors.base) names the vendor, method, path and reason. stamina's own hooks would add
# a bare `stamina.retry_scheduled` line and count into the global Prometheus registry nobody serves.
stamina.instrumentation.set_on_retry_hooks(())

_tracer = trace.get_tracer("parts_mcp")
# A path segment that names a thing rather than a route (route words: lower case, `-`, `_`, a version
# digit at most, as in `v1`): an id, a part number, a %-escaped value.
_ID_SEGMENT = re.compile(r"(?![a-z][a-z_-]{0,39}[0-9]?$).+")


def path_template(path: str) -> str:
    """`/part-orders/PO%2F17/status` -> `/part-orders/{id}/status`: no ids, no query, low cardinality."""
    route = path.split("?", 1)[0]
    return "/".join("{id}" if _ID_SEGMENT.fullmatch(part) else part for part in route.split("/"))


@dataclass
class VendorCall:
    """What `vendor_call`'s body learns: the attempts made and the HTTP status of the last answer."""

    attempts: int = 0
    status: int | None = None
    circuit_open: bool = False


@contextmanager
def vendor_call(vendor: str, method: str, path: str) -> Generator[VendorCall]:
    """A `vendor.request` span (a child of the current tool call's), the latency, the circuit's state.

    The span records no exception text and no body: a vendor's words stay out of traces as they stay
    out of logs, only the error's class names the failure.
    """
    call = VendorCall()
    attributes = {"parts_mcp.vendor": vendor, "http.request.method": method, "url.template": path_template(path)}
    started = time.perf_counter()
    with _tracer.start_as_current_span(
        "vendor.request",
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield call
        except BaseException as exc:
            call.status = call.status or getattr(exc, "status", None)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            VENDOR_SECONDS.labels(vendor).observe(time.perf_counter() - started)
            CIRCUIT_OPEN.labels(vendor).set(1 if call.circuit_open else 0)
            span.set_attribute("parts_mcp.attempts", call.attempts)
            if call.status is not None:
                span.set_attribute("http.response.status_code", call.status)


def tool_called(tool: str, outcome: str, code: str | None = None) -> None:
    TOOL_CALLS.labels(tool, outcome).inc()
    if code is not None:
        TOOL_ERRORS.labels(tool, code).inc()


def order_decided(vendor: str | None, decision: str) -> None:
    ORDER_DECISIONS.labels(vendor or "", decision).inc()
