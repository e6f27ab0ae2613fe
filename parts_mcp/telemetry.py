"""What an operator measures: Prometheus metrics, and the OpenTelemetry span around each vendor call.

The metrics live in one registry of our own (`registry()`, served at /metrics over HTTP by `server.operations`),
through `prometheus-client` rather than a hand-written exposition format. Labels are tool names,
error codes, vendor keys and decision names only: never a PO number, a person or an id.

Spans go through the OpenTelemetry API (installed with the MCP SDK, which makes a span per tool
call): a vendor call is a child of its tool call's span. Nothing is exported unless the embedding
process installs an OpenTelemetry SDK and exporter; without one every call here is a no-op.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["VendorCall", "order_decided", "path_template", "registry", "tool_called", "vendor_call"]


@dataclass(frozen=True)
class _Metrics:
    registry: CollectorRegistry
    tool_calls: Counter
    tool_errors: Counter
    vendor_seconds: Histogram
    circuit_open: Gauge
    order_decisions: Counter


_made: list[_Metrics] = []
_making = threading.Lock()  # servers in threads (tests, embedders) may count their first call at once


def _metrics() -> _Metrics:
    if not _made:
        with _making:
            if not _made:
                _made.append(_make())
    return _made[0]


# Made on first use, not at import: prometheus-client is ~8 ms of a cold start that counts nothing yet.
def _make() -> _Metrics:
    from prometheus_client import (
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        ProcessCollector,
        disable_created_metrics,
    )

    disable_created_metrics()  # no `*_created` twin of every series: Prometheus computes rates without them
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)  # memory, CPU, open files: the usual process_* series
    return _Metrics(
        registry=registry,
        tool_calls=Counter(
            "parts_mcp_tool_calls",
            "Tool calls by tool and outcome (ok, error, input_required)",
            ["tool", "outcome"],
            registry=registry,
        ),
        tool_errors=Counter(
            "parts_mcp_tool_errors", "Tool errors by tool and error code", ["tool", "code"], registry=registry
        ),
        vendor_seconds=Histogram(
            "parts_mcp_vendor_request_seconds",
            "One logical vendor request (retries and their waits included), by vendor",
            ["vendor"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        ),
        circuit_open=Gauge(
            "parts_mcp_vendor_circuit_open",
            "1 while the vendor's circuit breaker holds calls back (as of its last call), else 0",
            ["vendor"],
            registry=registry,
        ),
        order_decisions=Counter(
            "parts_mcp_order_decisions",
            "Order decisions (previewed, sent, placed, refused, ...) by vendor",
            ["vendor", "decision"],
            registry=registry,
        ),
    )


def registry() -> CollectorRegistry:
    """The one registry of our metrics, served at /metrics."""
    return _metrics().registry


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
            metrics = _metrics()
            metrics.vendor_seconds.labels(vendor).observe(time.perf_counter() - started)
            metrics.circuit_open.labels(vendor).set(1 if call.circuit_open else 0)
            span.set_attribute("parts_mcp.attempts", call.attempts)
            if call.status is not None:
                span.set_attribute("http.response.status_code", call.status)


def tool_called(tool: str, outcome: str, code: str | None = None) -> None:
    metrics = _metrics()
    metrics.tool_calls.labels(tool, outcome).inc()
    if code is not None:
        metrics.tool_errors.labels(tool, code).inc()


def order_decided(vendor: str | None, decision: str) -> None:
    _metrics().order_decisions.labels(vendor or "", decision).inc()
