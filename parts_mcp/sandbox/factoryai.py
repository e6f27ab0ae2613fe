"""Simulator of Factory AI's Parts, Inventory and Part Orders APIs (one tenant, one site).

Follows the vendor document (seeds/001) and docs/vendors.md section 2. Where the vendor leaves a
detail open, the choice made here is marked "undocumented" so a reader can tell it from fact:

- 8% tax on the subtotal (every documented example) and a flat shipping fee per supplier (the
  examples show 15-25; their PUT example's 20 for a 15-fee supplier is not modelled).
- An order above `APPROVAL_LIMIT` is refused with 403 unless it is created with
  ``requiresApproval``; approving one needs an approver whose own limit covers it (the documented
  403 "User cannot approve orders above $1000").
- ``search`` matches order number, notes and supplier name (case-insensitive substring);
  ``createdAfter`` / ``createdBefore`` are strict; lists are newest first.
- Errors: the order endpoints use the seed's shapes (400 ``{error, details}``, 404 ``{error,
  orderId}``, 403/409 ``{error, reason}``); auth, rate limiting, server errors and unknown routes
  use the overview's generic ``{error, code, timestamp}``.
- Rate limiting: more than `rate_limit` requests per key within `rate_window` seconds (injected
  clock) answer 429 with Retry-After.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, NoReturn

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from parts_mcp.sandbox._entry import Simulated
from parts_mcp.sandbox._faults import (
    DroppedConnectionResponse,
    Faults,
    RecordedRequest,
    RecordingMiddleware,
    admin_routes,
)

__all__ = [
    "APPROVAL_LIMIT",
    "FAULT_NAMES",
    "PARTS",
    "SANDBOX_API_KEY",
    "SANDBOX_SETTINGS",
    "STATUSES",
    "SUPPLIERS",
    "TAX_RATE",
    "FactoryAISimulator",
    "SimPart",
    "Supplier",
]

# Factory AI shows keys once and documents no format; this one only has to look like a key.
SANDBOX_API_KEY: Final = "f7i_sbx_4c0e9a7d2f61b8e35a9c"
# The [vendors.factoryai] config section the embedded sandbox uses (base_url is added by the Sandbox).
SANDBOX_SETTINGS: Final[dict[str, Any]] = {
    "kind": "factoryai",
    "api_key": SANDBOX_API_KEY,
    "supplier_id": "supplier-001",
    "shipping_address": {
        "name": "Factory AI Warehouse",
        "address1": "123 Industrial Way",
        "city": "Manufacturing City",
        "state": "CA",
        "postal_code": "90210",
        "country": "USA",
    },
}
TENANT_ID: Final = "tenant-123"
SITE: Final = "main-facility"
CURRENCY: Final = "USD"
TAX_RATE: Final = Decimal("0.08")
APPROVAL_LIMIT: Final = Decimal("10000.00")
SEED: Final = 20241001
SEEDED_ORDERS: Final = 160
MAX_PAGE: Final = 100
DEFAULT_PAGE: Final = 20

# search_error: the next order searches (GET /part-orders?search=) fail with 503, e.g. to show that a
# failed reconciliation search never leads to a resend.
FAULT_NAMES: Final = frozenset({"server_error", "rate_limit", "order_failed", "drop_after_commit", "search_error"})

STATUSES: Final = (
    "draft",
    "pending_approval",
    "approved",
    "sent",
    "acknowledged",
    "in_progress",
    "shipped",
    "partially_received",
    "received",
    "completed",
    "cancelled",
    "rejected",
)
# The list example shows "pending", which the status enum lacks: kept as a legacy value on a few seeded orders.
LEGACY_STATUSES: Final = ("pending",)
PRIORITIES: Final = ("low", "normal", "high", "urgent", "critical")
# Undocumented: which moves PUT /status allows. The documented history goes draft -> pending_approval
# -> approved -> sent -> received, and the status example approves a draft directly.
_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "draft": frozenset({"pending_approval", "approved", "cancelled"}),
    "pending": frozenset({"pending_approval", "approved", "rejected", "cancelled"}),
    "pending_approval": frozenset({"approved", "rejected", "cancelled", "draft"}),
    "approved": frozenset({"sent", "cancelled"}),
    "sent": frozenset(
        {"acknowledged", "in_progress", "shipped", "partially_received", "received", "cancelled", "rejected"}
    ),
    "acknowledged": frozenset({"in_progress", "shipped", "partially_received", "received", "cancelled"}),
    "in_progress": frozenset({"shipped", "partially_received", "received", "cancelled"}),
    "shipped": frozenset({"partially_received", "received"}),
    "partially_received": frozenset({"received"}),
    "received": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
}
# Edits (PUT /part-orders/{id}) are allowed until the order goes to the supplier.
_EDITABLE: Final = frozenset({"draft", "pending", "pending_approval", "approved"})
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class SimPart:
    part_id: str
    part_number: str
    name: str
    description: str
    cost: Decimal
    manufacturer: str
    category: str
    critical: bool
    quantity: int  # on hand at SITE
    min_stock: int
    max_stock: int
    unit: str = "each"


@dataclass(frozen=True)
class Supplier:
    supplier_id: str
    name: str
    shipping: Decimal
    email: str
    phone: str
    contact: str
    payment_terms: str
    shipping_method: str


@dataclass(frozen=True)
class _User:
    user_id: str
    name: str
    approval_limit: Decimal | None  # None: may approve any amount


def _p(
    n: int,
    number: str,
    name: str,
    description: str,
    cost: str,
    manufacturer: str,
    category: str,
    qty: int,
    low: int,
    high: int,
    critical: bool = False,
) -> SimPart:
    part_id = f"part-{n:03d}"
    return SimPart(part_id, number, name, description, Decimal(cost), manufacturer, category, critical, qty, low, high)


# The first three are the vendor's own examples (SKF-6204 at 75.50 with 15 on hand, FLUKE-175, FILTER-001).
# fmt: off
PARTS: Final[tuple[SimPart, ...]] = (
    _p(1, "SKF-6204", "Ball Bearing 6204", "Deep groove ball bearing, 20mm bore, 47mm OD", "75.50", "SKF",
       "Bearings", 15, 5, 50, critical=True),
    _p(2, "FLUKE-175", "Digital Multimeter", "True-RMS digital multimeter, CAT III 600V", "285.00", "Fluke",
       "Test Equipment", 3, 1, 6),
    _p(3, "FILTER-001", "Air Filter", "Pleated panel air filter, 20x20x2 in, MERV 8", "12.50", "Camfil",
       "Filters", 40, 20, 120),
    _p(4, "SKF-6205", "Ball Bearing 6205", "Deep groove ball bearing, 25mm bore, 52mm OD", "82.25", "SKF",
       "Bearings", 8, 5, 40, critical=True),
    _p(5, "SKF-6305-2RS", "Sealed Ball Bearing 6305", "Double sealed deep groove bearing, 25mm bore, 62mm OD",
       "118.40", "SKF", "Bearings", 0, 4, 20, critical=True),
    _p(6, "GATES-3VX500", "V-Belt 3VX500", "Super HC molded notch V-belt, 50 in outside length", "24.95", "Gates",
       "Power Transmission", 12, 6, 30),
    _p(7, "GATES-B48", "V-Belt B48", "Hi-Power II classical V-belt, 51 in outside length", "19.80", "Gates",
       "Power Transmission", 4, 6, 24),
    _p(8, "LOVEJOY-L100", "Jaw Coupling Spider L100", "NBR spider insert for L100 jaw coupling", "14.35", "Lovejoy",
       "Power Transmission", 10, 4, 20),
    _p(9, "RC60-10FT", "Roller Chain #60", "ANSI 60 riveted roller chain, 10 ft box", "96.00", "Tsubaki",
       "Power Transmission", 2, 2, 8),
    _p(10, "PARKER-2-214", "O-Ring 2-214 (Pack of 50)", "Nitrile 70A O-ring, 1-1/16 in ID", "18.60", "Parker",
       "Seals", 9, 3, 15),
    _p(11, "JC-SEAL-A2", "Pump Mechanical Seal", "Type 21 elastomer bellows seal, 1.375 in shaft", "342.00",
       "John Crane", "Seals", 1, 1, 4, critical=True),
    _p(12, "MOBIL-XHP222", "Grease Mobilgrease XHP 222", "Lithium complex grease, 14 oz cartridge", "9.45", "Mobil",
       "Lubricants", 60, 24, 144),
    _p(13, "MOBIL-DTE25", "Hydraulic Oil DTE 25 (5 gal)", "ISO VG 46 anti-wear hydraulic oil, 5 gallon pail",
       "148.90", "Mobil", "Lubricants", 6, 2, 12),
    _p(14, "HYD-FLT-937", "Hydraulic Return Filter", "10 micron return-line element, 937 series", "64.75",
       "Parker", "Filters", 5, 4, 16),
    _p(15, "AB-100-C23D10", "Motor Contactor 23A", "IEC contactor, 23A, 120V AC coil, 1 N.O.", "118.00",
       "Allen-Bradley", "Electrical", 3, 2, 8),
    _p(16, "AB-193-T1AB40", "Overload Relay 2.9-4A", "Bimetallic overload relay, 2.9-4.0 A", "86.50",
       "Allen-Bradley", "Electrical", 0, 2, 6),
    _p(17, "BUSS-FNQ-R-10", "Time-Delay Fuse 10A", "Class CC time-delay fuse, 600V, 10A", "16.20", "Eaton Bussmann",
       "Electrical", 25, 10, 50),
    _p(18, "IFM-IG5594", "Inductive Proximity Sensor", "M18 inductive sensor, 8mm range, PNP, M12 connector",
       "96.30", "ifm", "Sensors", 4, 2, 10, critical=True),
    _p(19, "ASCO-8210G2", "Solenoid Valve 1/2 in", "2-way normally closed solenoid valve, 1/2 NPT, 120V",
       "214.00", "ASCO", "Pneumatics", 2, 1, 5),
    _p(20, "SMC-CQ2B32-SK", "Pneumatic Cylinder Seal Kit", "Seal kit for CQ2 32mm compact cylinder", "38.90",
       "SMC", "Pneumatics", 7, 3, 12),
    _p(21, "WIKA-213-53", "Pressure Gauge 0-160 psi", "2.5 in liquid-filled gauge, 1/4 NPT lower mount", "27.80",
       "WIKA", "Instrumentation", 11, 4, 20),
    _p(22, "BALDOR-EM3546T", "Motor 1.5 HP TEFC", "Premium efficiency motor, 1.5 HP, 1755 rpm, 145T frame",
       "1289.00", "Baldor", "Motors", 1, 1, 2, critical=True),
    _p(23, "DODGE-P2B-SC-100", "Pillow Block Bearing 1 in", "Set-screw pillow block ball bearing, 1 in bore",
       "58.60", "Dodge", "Bearings", 6, 2, 12),
    _p(24, "3M-LED-T8-4FT", "LED Tube T8 4 ft", "Type A/B LED tube, 18W, 4000K", "11.75", "Philips",
       "Facilities", 48, 24, 96),
    _p(25, "LOTO-KIT-01", "Lockout/Tagout Kit", "Personal lockout kit with 3 padlocks and tags", "129.00",
       "Brady", "Safety", 5, 2, 10),
    _p(26, "ENC-HS35R-1024", "Incremental Encoder 1024 PPR", "Hollow shaft encoder, 5/8 in bore, 1024 PPR",
       "465.00", "Dynapar", "Sensors", 0, 1, 3, critical=True),
    _p(27, "VFD-FAN-92MM", "VFD Cooling Fan 92mm", "24V DC ball-bearing fan for drive heatsinks", "23.40",
       "Sunon", "Electrical", 9, 4, 16),
    _p(28, "GRAINGER-WIPES-300", "Shop Wipes (Box of 300)", "Low-lint disposable shop wipes", "32.10",
       "Kimberly-Clark", "Consumables", 14, 6, 30),
)
# fmt: on

# fmt: off
SUPPLIERS: Final[tuple[Supplier, ...]] = (
    Supplier("supplier-001", "Industrial Supply Co", Decimal("25.00"), "orders@industrialsupply.com",
             "+1-555-0123", "Bob Smith", "Net 30", "Standard Ground"),
    Supplier("supplier-002", "Test Equipment Direct", Decimal("15.00"), "sales@testequipmentdirect.com",
             "+1-555-0188", "Dana Lee", "Net 15", "Express"),
    Supplier("supplier-003", "Midwest Bearing & Transmission", Decimal("20.00"), "po@midwestbearing.com",
             "+1-555-0142", "Carl Jensen", "2/10 Net 30", "Standard Ground"),
    Supplier("supplier-004", "Precision Fluid Power", Decimal("18.50"), "orders@precisionfluid.com",
             "+1-555-0177", "Maria Gomez", "Net 60", "Freight"),
    Supplier("supplier-005", "Summit Electrical Supply", Decimal("22.00"), "counter@summitelectric.com",
             "+1-555-0199", "Raj Patel", "Net 30", "Overnight"),
    Supplier("supplier-006", "Lakeside Safety Products", Decimal("12.00"), "service@lakesidesafety.com",
             "+1-555-0155", "Erin Walsh", "Prepaid", "Pickup"),
)
# fmt: on

_USERS: Final[dict[str, _User]] = {
    u.user_id: u
    for u in (
        _User("user-001", "Mike Johnson", Decimal("500")),
        _User("user-002", "Sarah Wilson", APPROVAL_LIMIT),
        # The API key's own user; the documented 403 says this kind of user cannot approve above $1000.
        _User("user-003", "Tom Anderson", Decimal("1000")),
        _User("user-004", "Linda Chen", Decimal("1000")),
        _User("user-005", "Priya Raman", None),
    )
}
_KEY_USER: Final = "user-003"

DEFAULT_ADDRESS: Final[dict[str, str]] = {
    "name": "Factory AI Warehouse",
    "address1": "123 Industrial Way",
    "city": "Manufacturing City",
    "state": "CA",
    "postalCode": "90210",
    "country": "USA",
}
_ADDRESS_FIELDS: Final = ("name", "address1", "city", "state", "postalCode", "country")

_NOTES = (
    "Restock for preventive maintenance",
    "Urgent order for pump maintenance",
    "Quarterly consumables replenishment",
    "Spares for line 2 conveyor",
    "Replacement after breakdown on press 4",
    "Safety stock top-up",
    "Shutdown kit for annual turnaround",
    "Critical spares per reliability review",
)


class _ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body
        self.headers = headers or {}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _num(amount: Decimal) -> float:
    # The API speaks JSON floats in major units; a 2-decimal amount round-trips exactly through its repr.
    return float(amount)


def _money(amount: Decimal) -> Decimal:
    return amount.quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclass
class _Line:
    part: SimPart
    quantity: int
    unit_cost: Decimal
    notes: str | None = None
    received: int = 0
    status: str = "pending"

    @property
    def total(self) -> Decimal:
        return _money(self.unit_cost * self.quantity)


@dataclass
class _Order:
    seq: int
    order_number: str
    status: str
    priority: str
    supplier: Supplier
    requested_by: _User
    lines: list[_Line]
    created_at: float
    updated_at: float
    shipping_address: dict[str, str]
    notes: str | None = None
    requires_approval: bool = False
    justification: str | None = None
    approved_by: _User | None = None
    approved_at: float | None = None
    sent_at: float | None = None
    requested_delivery: str | None = None
    expected_delivery: str | None = None
    actual_delivery: str | None = None
    tracking_number: str | None = None
    invoice_number: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"po-{self.seq:03d}"

    def totals(self) -> dict[str, Decimal]:
        subtotal = sum((line.total for line in self.lines), Decimal("0.00"))
        tax = _money(subtotal * TAX_RATE)
        shipping = self.supplier.shipping
        return {"subtotal": subtotal, "tax": tax, "shipping": shipping, "total": subtotal + tax + shipping}


class FactoryAISimulator:
    """Factory AI's Parts, Inventory and Part Orders endpoints for one tenant, with fault injection.

    ``orders`` is the ground truth of part orders created through the API (seeded orders are not
    in it); ``requests`` logs every API request. Faults (``faults.arm``): ``server_error`` answers
    the next request 500; ``rate_limit`` answers it 429 with Retry-After; ``order_failed`` answers
    the next order creation 500 without creating it; ``drop_after_commit`` creates the next order,
    then drops the connection before the answer.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (SANDBOX_API_KEY,),
        read_only_keys: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        # High by default: tests run on a ManualClock that rarely moves, so every request lands in one window.
        rate_limit: int = 100_000,
        rate_window: float = 60.0,
        seed: int = SEED,
    ) -> None:
        if rate_limit < 1 or rate_window <= 0:
            raise ValueError("rate_limit must be at least 1 and rate_window positive")
        # Mutable on purpose: a test revokes a key by removing it.
        self.api_keys = set(api_keys)
        self.read_only_keys = set(read_only_keys)
        self.clock = clock
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.faults = Faults(names=FAULT_NAMES)
        self.requests: list[RecordedRequest] = []
        self.parts: dict[str, SimPart] = {p.part_id: p for p in PARTS}
        self.suppliers: dict[str, Supplier] = {s.supplier_id: s for s in SUPPLIERS}
        self._orders: dict[str, _Order] = {}
        self._created: list[str] = []
        self._hits: dict[str, deque[float]] = {}
        self._seed_orders(random.Random(seed))
        self.app = Starlette(
            routes=[
                Route("/parts", self._list_parts, methods=["GET"]),
                Route("/parts/{part_id}", self._get_part, methods=["GET"]),
                Route("/inventory", self._list_inventory, methods=["GET"]),
                Route("/inventory/{part_id}", self._get_inventory, methods=["GET"]),
                Route("/part-orders", self._list_orders, methods=["GET"]),
                Route("/part-orders", self._create_order, methods=["POST"]),
                Route("/part-orders/{order_id}", self._get_order, methods=["GET"]),
                Route("/part-orders/{order_id}", self._update_order, methods=["PUT"]),
                Route("/part-orders/{order_id}/status", self._update_status, methods=["PUT"]),
                *admin_routes(self.faults, lambda: self.orders),
            ],
            middleware=[Middleware(RecordingMiddleware, log=self.requests)],
            exception_handlers={_ApiError: self._render_api_error, HTTPException: self._render_http_error},
        )

    # -- test controls ------------------------------------------------------------------------------

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Part orders created through the API, oldest first, as GET /part-orders/{id} shows them now."""
        return [self._render(self._orders[order_id], full=True) for order_id in self._created]

    def order(self, order_id: str) -> dict[str, Any]:
        """Any order (seeded or created) as GET /part-orders/{id} shows it.

        Raises:
            KeyError: no such order.
        """
        return self._render(self._orders[order_id], full=True)

    def order_ids(self, status: str | None = None) -> list[str]:
        """Ids of every order (seeded and created), or of those with this raw status, oldest first."""
        return [o.id for o in self._orders.values() if status is None or o.status == status]

    def remove_part(self, part_number: str) -> None:
        """Delete a part from the tenant's catalog (as DELETE /parts/{id} would), e.g. after a look-up.

        Raises:
            KeyError: no part has this number.
        """
        del self.parts[self._part_by_number(part_number).part_id]

    def set_cost(self, part_number: str, cost: str) -> None:
        """Change a part's stored cost, e.g. to model a price rise after a preview.

        Raises:
            KeyError: no part has this number.
        """
        part = self._part_by_number(part_number)
        self.parts[part.part_id] = replace(part, cost=Decimal(cost))

    def _part_by_number(self, part_number: str) -> SimPart:
        for part in self.parts.values():
            if part.part_number.casefold() == part_number.casefold():
                return part
        raise KeyError(part_number)

    # -- seeding ------------------------------------------------------------------------------------

    def _seed_orders(self, rng: random.Random) -> None:
        self._seed_documented_examples()
        # Every status at least a dozen times, a couple of legacy ones, 160 orders with the two examples.
        statuses = [*STATUSES * 13, *LEGACY_STATUSES * 2]
        assert len(statuses) == SEEDED_ORDERS - 2
        rng.shuffle(statuses)
        when = datetime(2024, 10, 16, 8, 0, tzinfo=UTC).timestamp()
        parts = list(PARTS)
        for index, status in enumerate(statuses):
            when += rng.randint(86400, 8 * 86400)
            supplier = rng.choice(SUPPLIERS)
            chosen = rng.sample(parts, rng.randint(1, 4))
            lines = [_Line(p, rng.randint(1, 3) if p.cost > 200 else rng.randint(2, 30), p.cost) for p in chosen]
            seq = index + 3
            order = _Order(
                seq=seq,
                order_number=f"PO-{datetime.fromtimestamp(when, UTC).year}-{seq:03d}",
                status="draft",
                priority=rng.choices(PRIORITIES, weights=(2, 6, 3, 2, 1))[0],
                supplier=supplier,
                requested_by=_USERS[rng.choice(("user-001", "user-003", "user-004"))],
                lines=lines,
                created_at=when,
                updated_at=when,
                shipping_address=dict(DEFAULT_ADDRESS),
                notes=rng.choice(_NOTES),
                requested_delivery=_iso(when + rng.randint(5, 21) * 86400)[:10] + "T00:00:00Z",
            )
            order.history.append(_history("draft", order.requested_by.user_id, when, "Order created"))
            self._advance_seeded(order, status, rng)
            self._orders[order.id] = order

    def _seed_documented_examples(self) -> None:
        """po-001 exactly as the vendor's GET example, po-002 as its create example."""
        created = datetime(2024, 10, 1, 9, 0, tzinfo=UTC).timestamp()
        po1 = _Order(
            seq=1,
            order_number="PO-2024-001",
            status="received",
            priority="normal",
            supplier=self.suppliers["supplier-001"],
            requested_by=_USERS["user-001"],
            lines=[_Line(self.parts["part-001"], 25, Decimal("75.50"), received=25, status="received")],
            created_at=created,
            updated_at=datetime(2024, 10, 7, 14, 30, tzinfo=UTC).timestamp(),
            shipping_address=dict(DEFAULT_ADDRESS),
            notes="Urgent order for pump maintenance",
            approved_by=_USERS["user-002"],
            approved_at=datetime(2024, 10, 1, 14, 0, tzinfo=UTC).timestamp(),
            sent_at=datetime(2024, 10, 1, 15, 0, tzinfo=UTC).timestamp(),
            requested_delivery="2024-10-08T00:00:00Z",
            expected_delivery="2024-10-08T00:00:00Z",
            actual_delivery="2024-10-07T14:30:00Z",
            tracking_number="1Z999AA1234567890",
            invoice_number="INV-2024-001",
            history=[
                _history("draft", "user-001", _at("2024-10-01T09:00:00Z"), "Order created"),
                _history("pending_approval", "user-001", _at("2024-10-01T09:30:00Z"), "Submitted for approval"),
                _history("approved", "user-002", _at("2024-10-01T14:00:00Z"), "Approved by manager"),
                _history("sent", "system", _at("2024-10-01T15:00:00Z"), "Order sent to supplier"),
                _history("received", "user-004", _at("2024-10-07T14:30:00Z"), "Order received and verified"),
            ],
            attachments=[
                {
                    "id": "attachment-001",
                    "filename": "purchase_order.pdf",
                    "type": "application/pdf",
                    "size": 245760,
                    "uploadedBy": "user-001",
                    "uploadedAt": "2024-10-01T15:00:00Z",
                }
            ],
        )
        created = datetime(2024, 10, 15, 10, 30, tzinfo=UTC).timestamp()
        po2 = _Order(
            seq=2,
            order_number="PO-2024-002",
            status="draft",
            priority="urgent",
            supplier=self.suppliers["supplier-002"],
            requested_by=_USERS["user-003"],
            lines=[
                _Line(self.parts["part-002"], 5, Decimal("285.00"), "Digital multimeters for maintenance team"),
                _Line(self.parts["part-003"], 10, Decimal("12.50"), "Replacement filters"),
            ],
            created_at=created,
            updated_at=created,
            shipping_address=dict(DEFAULT_ADDRESS),
            notes="Urgent order for scheduled maintenance",
            requires_approval=True,
            justification="Required for critical equipment maintenance scheduled next week",
            requested_delivery="2024-10-20T00:00:00Z",
            history=[_history("draft", "user-003", created, "Order created")],
        )
        self._orders[po1.id] = po1
        self._orders[po2.id] = po2

    def _advance_seeded(self, order: _Order, status: str, rng: random.Random) -> None:
        """Walk a seeded order along a documented-looking path to `status`, filling what each step sets."""
        path = {
            "draft": [],
            "pending": ["pending"],
            "pending_approval": ["pending_approval"],
            "rejected": ["pending_approval", "rejected"],
            "cancelled": rng.choice([["cancelled"], ["pending_approval", "approved", "cancelled"]]),
            "approved": ["pending_approval", "approved"],
        }.get(status)
        if path is None:
            after_sent = {
                "sent": [],
                "acknowledged": ["acknowledged"],
                "in_progress": ["acknowledged", "in_progress"],
                "shipped": ["acknowledged", "in_progress", "shipped"],
                "partially_received": ["acknowledged", "shipped", "partially_received"],
                "received": ["acknowledged", "shipped", "received"],
                "completed": ["shipped", "received", "completed"],
            }[status]
            path = ["pending_approval", "approved", "sent", *after_sent]
        when = order.created_at
        for step in path:
            when += rng.randint(1800, 2 * 86400)
            actor = order.requested_by.user_id
            note = {
                "pending": "Submitted",
                "pending_approval": "Submitted for approval",
                "approved": "Approved by manager",
                "rejected": "Rejected: over budget for this quarter",
                "cancelled": "Cancelled: no longer needed",
                "sent": "Order sent to supplier",
                "acknowledged": "Supplier acknowledged",
                "in_progress": "Supplier preparing order",
                "shipped": "Shipped by supplier",
                "partially_received": "Partial delivery received",
                "received": "Order received and verified",
                "completed": "Order closed",
            }[step]
            if step in ("approved", "rejected"):
                approver = _USERS["user-005"] if order.totals()["total"] > APPROVAL_LIMIT else _USERS["user-002"]
                actor = approver.user_id
                if step == "approved":
                    order.approved_by, order.approved_at = approver, when
            elif step == "sent":
                actor = "system"
                order.sent_at = when
                order.expected_delivery = _iso(when + rng.randint(2, 10) * 86400)[:10] + "T00:00:00Z"
            elif step == "shipped":
                order.tracking_number = f"1Z{rng.randrange(16**12):012X}"
            elif step in ("partially_received", "received"):
                actor = "user-004"
                for index, line in enumerate(order.lines):
                    full = step == "received" or index > 0
                    line.received = line.quantity if full else line.quantity // 2
                    line.status = "received" if full else "partially_received"
                if step == "received":
                    order.actual_delivery = _iso(when)
                    order.invoice_number = f"INV-{order.order_number[3:]}"
            order.history.append(_history(step, actor, when, note))
            order.status = step
            order.updated_at = when

    # -- rendering ----------------------------------------------------------------------------------

    def _render_api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _ApiError)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    def _render_http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = "METHOD_NOT_ALLOWED" if exc.status_code == 405 else "NOT_FOUND"
        body = self._generic(code.replace("_", " ").title(), code)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    def _generic(self, error: str, code: str) -> dict[str, Any]:
        """The overview's generic error body."""
        return {"error": error, "code": code, "timestamp": _iso(self.clock())}

    def _render_part(self, part: SimPart) -> dict[str, Any]:
        return {
            "partId": part.part_id,
            "partNumber": part.part_number,
            "name": part.name,
            "description": part.description,
            "unit": part.unit,
            "cost": _num(part.cost),
            "manufacturer": part.manufacturer,
            "tenantId": TENANT_ID,
            "site": SITE,
            "componentIds": [],
            "componentDetails": [],
            "createdAt": "2024-01-15T10:30:00Z",
            "updatedAt": "2024-10-01T14:45:00Z",
        }

    def _render_inventory(self, part: SimPart) -> dict[str, Any]:
        return {
            "partId": part.part_id,
            "site": SITE,
            "tenantId": TENANT_ID,
            "quantity": part.quantity,
            "minStockLevel": part.min_stock,
            "maxStockLevel": part.max_stock,
            "createdAt": "2024-01-15T10:30:00Z",
            "updatedAt": "2024-10-10T14:30:00Z",
            "partDetails": {
                "partNumber": part.part_number,
                "name": part.name,
                "unit": part.unit,
                "cost": _num(part.cost),
            },
        }

    def _render_line(self, line: _Line, *, full: bool) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "partId": line.part.part_id,
            "partNumber": line.part.part_number,
            "partName": line.part.name,
            "quantity": line.quantity,
        }
        if full:
            rendered["receivedQuantity"] = line.received
        rendered["unitCost"] = _num(line.unit_cost)
        rendered["totalCost"] = _num(line.total)
        if line.notes:
            rendered["notes"] = line.notes
        if full:
            rendered["status"] = line.status
        return rendered

    def _render(self, order: _Order, *, full: bool) -> dict[str, Any]:
        """The list shape, or with `full` the richer GET shape."""
        approver = order.approved_by
        body: dict[str, Any] = {
            "id": order.id,
            "orderNumber": order.order_number,
            "status": order.status,
            "priority": order.priority,
            "supplierId": order.supplier.supplier_id,
            "supplierName": order.supplier.name,
        }
        if full:
            body["supplierContact"] = {
                "email": order.supplier.email,
                "phone": order.supplier.phone,
                "contactPerson": order.supplier.contact,
            }
        body |= {
            "requestedBy": order.requested_by.user_id,
            "requestedByName": order.requested_by.name,
            "approvedBy": approver.user_id if approver else None,
            "approvedByName": approver.name if approver else None,
            "orderDate": _iso(order.created_at),
        }
        if full:
            body["approvedDate"] = _iso(order.approved_at) if order.approved_at else None
            body["sentDate"] = _iso(order.sent_at) if order.sent_at else None
        body |= {
            "requestedDeliveryDate": order.requested_delivery,
            "expectedDeliveryDate": order.expected_delivery,
            "actualDeliveryDate": order.actual_delivery,
            "items": [self._render_line(line, full=full) for line in order.lines],
            "totals": {k: _num(v) for k, v in order.totals().items()},
            "currency": CURRENCY,
        }
        if full:
            body["paymentTerms"] = order.supplier.payment_terms
            body["shippingMethod"] = order.supplier.shipping_method
        body |= {"shippingAddress": dict(order.shipping_address), "trackingNumber": order.tracking_number}
        if full:
            body["invoiceNumber"] = order.invoice_number
        body["notes"] = order.notes
        if full:
            body |= {
                "requiresApproval": order.requires_approval,
                "justification": order.justification,
                "approvalRequired": order.requires_approval,
                "statusHistory": [dict(h) for h in order.history],
                "attachments": [dict(a) for a in order.attachments],
            }
        body |= {"createdAt": _iso(order.created_at), "updatedAt": _iso(order.updated_at)}
        return body

    # -- the gate every API request passes ------------------------------------------------------------

    async def _begin(self, request: Request, *, write: bool = False) -> _User:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or key not in self.api_keys | self.read_only_keys:
            raise _ApiError(401, self._generic("Unauthorized: missing or invalid API key", "UNAUTHORIZED"))
        self._rate_limit(key)
        await self.faults.delay()
        if self.faults.take("server_error"):
            raise _ApiError(500, self._generic("Internal server error", "INTERNAL_ERROR"))
        if write and key in self.read_only_keys:
            raise _ApiError(403, self._generic("This API key is read-only", "FORBIDDEN"))
        return _USERS[_KEY_USER]

    def _rate_limit(self, key: str) -> None:
        if self.faults.take("rate_limit"):
            raise _ApiError(
                429, self._generic("Too many requests", "RATE_LIMIT_EXCEEDED"), headers={"Retry-After": "1"}
            )
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.rate_window:
            hits.popleft()
        if len(hits) >= self.rate_limit:
            wait = max(1, math.ceil(hits[0] + self.rate_window - now))
            raise _ApiError(
                429, self._generic("Too many requests", "RATE_LIMIT_EXCEEDED"), headers={"Retry-After": str(wait)}
            )
        hits.append(now)

    # -- parts and inventory ------------------------------------------------------------------------

    async def _list_parts(self, request: Request) -> Response:
        await self._begin(request)
        q = request.query_params
        limit, offset = _paging(q)
        search = (q.get("search") or "").strip().casefold()
        in_stock, critical = _flag(q, "inStock"), _flag(q, "critical")
        found = [
            p
            for p in self.parts.values()
            if (not search or any(search in s.casefold() for s in _part_text(p)))
            and (not q.get("category") or p.category.casefold() == q["category"].casefold())
            and (not q.get("manufacturer") or p.manufacturer.casefold() == q["manufacturer"].casefold())
            and (in_stock is None or (p.quantity > 0) == in_stock)
            and (critical is None or p.critical == critical)
        ]
        return JSONResponse([self._render_part(p) for p in found[offset : offset + limit]])

    async def _get_part(self, request: Request) -> Response:
        await self._begin(request)
        part = self.parts.get(request.path_params["part_id"])
        if part is None:
            raise _ApiError(404, {"error": "Part not found", "partId": request.path_params["part_id"]})
        return JSONResponse(self._render_part(part))

    async def _list_inventory(self, request: Request) -> Response:
        await self._begin(request)
        q = request.query_params
        limit, offset = _paging(q)
        search = (q.get("search") or "").strip().casefold()
        low, out = _flag(q, "lowStock"), _flag(q, "outOfStock")
        location = q.get("location")
        found = [
            p
            for p in self.parts.values()
            if (not search or any(search in s.casefold() for s in (p.part_id, p.part_number, p.name)))
            and (not location or location == SITE)
            and (not q.get("category") or p.category.casefold() == q["category"].casefold())
            and (low is None or (p.quantity <= p.min_stock) == low)
            and (out is None or (p.quantity == 0) == out)
        ]
        return JSONResponse([self._render_inventory(p) for p in found[offset : offset + limit]])

    async def _get_inventory(self, request: Request) -> Response:
        await self._begin(request)
        part_id = request.path_params["part_id"]
        part = self.parts.get(part_id)
        site = request.query_params.get("site")
        if site is not None:
            # Documented: with a site the answer is one record with an `exists` flag.
            if part is None or site != SITE:
                missing = {"partId": part_id, "site": site, "tenantId": TENANT_ID, "quantity": 0, "exists": False}
                return JSONResponse(missing)
            return JSONResponse({**self._render_inventory(part), "exists": True})
        if part is None:
            raise _ApiError(404, {"error": "Inventory not found", "partId": part_id})
        return JSONResponse(self._render_inventory(part))

    # -- part orders: read ----------------------------------------------------------------------------

    async def _list_orders(self, request: Request) -> Response:
        await self._begin(request)
        if request.query_params.get("search") and self.faults.take("search_error"):
            raise _ApiError(503, self._generic("Service unavailable", "SERVICE_UNAVAILABLE"))
        q = request.query_params
        limit, offset = _paging(q)
        errors: dict[str, str] = {}
        status = q.get("status")
        if status is not None and status not in (*STATUSES, *LEGACY_STATUSES):
            errors["status"] = f"Status must be one of: {', '.join(STATUSES)}"
        after, before = _when(q, "createdAfter", errors), _when(q, "createdBefore", errors)
        urgent = _flag(q, "urgent")
        if errors:
            raise _ApiError(400, {"error": "Invalid query parameters", "details": errors})
        search = (q.get("search") or "").strip().casefold()
        supplier = q.get("supplier")
        found = [
            o
            for o in self._orders.values()
            if (status is None or o.status == status)
            and (not supplier or o.supplier.supplier_id == supplier)
            and (urgent is None or (o.priority in ("urgent", "critical")) == urgent)
            and (after is None or o.created_at > after)
            and (before is None or o.created_at < before)
            and (not search or any(search in s.casefold() for s in (o.order_number, o.notes or "", o.supplier.name)))
        ]
        found.sort(key=lambda o: (o.created_at, o.seq), reverse=True)
        page = found[offset : offset + limit]
        return JSONResponse(
            {
                "partOrders": [self._render(o, full=False) for o in page],
                "pagination": {
                    "total": len(found),
                    "limit": limit,
                    "offset": offset,
                    "hasMore": offset + len(page) < len(found),
                },
            }
        )

    def _find(self, order_id: str) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            raise _ApiError(404, {"error": "Part order not found", "orderId": order_id})
        return order

    async def _get_order(self, request: Request) -> Response:
        await self._begin(request)
        return JSONResponse(self._render(self._find(request.path_params["order_id"]), full=True))

    # -- part orders: write ---------------------------------------------------------------------------

    async def _create_order(self, request: Request) -> Response:
        user = await self._begin(request, write=True)
        body = await _json_object(request)
        errors: dict[str, str] = {}
        supplier = None
        supplier_id = body.get("supplierId")
        if not isinstance(supplier_id, str) or not supplier_id.strip():
            errors["supplierId"] = "Supplier is required"
        elif (supplier := self.suppliers.get(supplier_id)) is None:
            errors["supplierId"] = f"Supplier {supplier_id} not found"
        priority = body.get("priority", "normal")
        if priority not in PRIORITIES:
            errors["priority"] = f"Priority must be one of: {', '.join(PRIORITIES)}"
        delivery = self._delivery_date(body, errors)
        lines = self._lines(body.get("items"), errors, required=True)
        address = _address(body, errors)
        notes = _optional_text(body, "notes", errors)
        justification = _optional_text(body, "justification", errors)
        requires_approval = body.get("requiresApproval", False)
        if not isinstance(requires_approval, bool):
            errors["requiresApproval"] = "requiresApproval must be a boolean"
        elif requires_approval and not (justification or "").strip():
            errors["justification"] = "Justification is required when requiresApproval is true"
        if errors:
            raise _ApiError(400, {"error": "Invalid order data", "details": errors})
        assert supplier is not None
        if self.faults.take("order_failed"):
            # Nothing is written, but like any 500 the client cannot know that.
            raise _ApiError(500, self._generic("Internal server error", "INTERNAL_ERROR"))

        now = self.clock()
        seq = max(o.seq for o in self._orders.values()) + 1
        order = _Order(
            seq=seq,
            order_number=f"PO-{datetime.fromtimestamp(now, UTC).year}-{seq:03d}",
            status="draft",
            priority=priority,
            supplier=supplier,
            requested_by=user,
            lines=lines,
            created_at=now,
            updated_at=now,
            shipping_address=address or dict(DEFAULT_ADDRESS),
            notes=notes,
            requires_approval=requires_approval,
            justification=justification,
            requested_delivery=delivery,
            history=[_history("draft", user.user_id, now, "Order created")],
        )
        total = order.totals()["total"]
        if total > APPROVAL_LIMIT and not requires_approval:
            raise _ApiError(
                403,
                {
                    "error": "Insufficient permissions",
                    "reason": f"Orders above ${APPROVAL_LIMIT:.0f} require approval: "
                    "set requiresApproval and give a justification",
                },
            )
        self._orders[order.id] = order
        self._created.append(order.id)
        # Undocumented: 201 (the vendor shows only the body).
        response = JSONResponse(self._render_created(order), status_code=201)
        return DroppedConnectionResponse(response) if self.faults.take("drop_after_commit") else response

    def _render_created(self, order: _Order) -> dict[str, Any]:
        # The documented create response is the list shape without delivery/tracking, plus the approval fields.
        body = self._render(order, full=False)
        del body["actualDeliveryDate"], body["trackingNumber"]
        return body | {
            "requiresApproval": order.requires_approval,
            "justification": order.justification,
            "approvalRequired": order.requires_approval,
        }

    async def _update_order(self, request: Request) -> Response:
        await self._begin(request, write=True)
        order = self._find(request.path_params["order_id"])
        body = await _json_object(request)
        if order.status not in _EDITABLE:
            raise _ApiError(409, {"error": "Cannot update order", "reason": _locked_reason(order.status)})
        errors: dict[str, str] = {}
        priority = body.get("priority", order.priority)
        if priority not in PRIORITIES:
            errors["priority"] = f"Priority must be one of: {', '.join(PRIORITIES)}"
        delivery = self._delivery_date(body, errors) if "requestedDeliveryDate" in body else order.requested_delivery
        notes = _optional_text(body, "notes", errors) if "notes" in body else order.notes
        updates = self._lines(body["items"], errors, required=False) if "items" in body else []
        if errors:
            raise _ApiError(400, {"error": "Invalid order data", "details": errors})
        order.priority, order.requested_delivery, order.notes = priority, delivery, notes
        # Undocumented but implied by the example's totals: items upsert by partId rather than replace.
        by_part = {line.part.part_id: line for line in order.lines}
        for update in updates:
            if update.part.part_id in by_part:
                line = by_part[update.part.part_id]
                line.quantity, line.unit_cost, line.notes = update.quantity, update.unit_cost, update.notes
            else:
                order.lines.append(update)
        order.updated_at = self.clock()
        touched = {u.part.part_id for u in updates}
        # The documented answer is partial: the fields that can change, the touched items, and new totals.
        return JSONResponse(
            {
                "id": order.id,
                "orderNumber": order.order_number,
                "status": order.status,
                "priority": order.priority,
                "requestedDeliveryDate": order.requested_delivery,
                "notes": order.notes,
                "items": [self._render_line(line, full=False) for line in order.lines if line.part.part_id in touched],
                "totals": {k: _num(v) for k, v in order.totals().items()},
                "updatedAt": _iso(order.updated_at),
            }
        )

    async def _update_status(self, request: Request) -> Response:
        user = await self._begin(request, write=True)
        order = self._find(request.path_params["order_id"])
        body = await _json_object(request)
        status = body.get("status")
        errors: dict[str, str] = {}
        if status not in STATUSES:
            errors["status"] = f"Status must be one of: {', '.join(STATUSES)}"
        notes = _optional_text(body, "notes", errors)
        approver_id = body.get("approvedBy", user.user_id)
        approver = _USERS.get(approver_id) if isinstance(approver_id, str) else None
        if status == "approved" and approver is None:
            errors["approvedBy"] = f"User {approver_id} not found"
        if errors:
            raise _ApiError(400, {"error": "Invalid status update", "details": errors})
        assert isinstance(status, str)
        if status not in _TRANSITIONS[order.status]:
            reason = (
                _locked_reason(order.status)
                if order.status not in _EDITABLE and status in _EDITABLE
                else f"Cannot change status from {order.status} to {status}"
            )
            raise _ApiError(409, {"error": "Cannot update order status", "reason": reason})
        now = self.clock()
        if status == "approved":
            assert approver is not None
            limit = approver.approval_limit
            if limit is not None and order.totals()["total"] > limit:
                reason = f"User cannot approve orders above ${limit:.0f}"
                raise _ApiError(403, {"error": "Insufficient permissions", "reason": reason})
            order.approved_by, order.approved_at = approver, now
        elif status == "sent":
            order.sent_at = now
        elif status == "received":
            order.actual_delivery = _iso(now)
            for line in order.lines:
                line.received, line.status = line.quantity, "received"
        changed_by = approver.user_id if status == "approved" and approver else user.user_id
        order.history.append(_history(status, changed_by, now, notes or ""))
        order.status, order.updated_at = status, now
        approved = order.approved_by
        return JSONResponse(
            {
                "id": order.id,
                "orderNumber": order.order_number,
                "status": order.status,
                "approvedBy": approved.user_id if approved else None,
                "approvedByName": approved.name if approved else None,
                "approvedDate": _iso(order.approved_at) if order.approved_at else None,
                "statusHistory": [dict(h) for h in order.history],
                "updatedAt": _iso(order.updated_at),
            }
        )

    # -- validation helpers that need state -------------------------------------------------------------

    def _delivery_date(self, body: dict[str, Any], errors: dict[str, str]) -> str | None:
        raw = body.get("requestedDeliveryDate")
        if raw is None:
            return None
        parsed = _parse_when(raw)
        if parsed is None:
            errors["requestedDeliveryDate"] = "Delivery date must be an ISO 8601 date"
            return None
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        if parsed.date() < today:
            errors["requestedDeliveryDate"] = "Delivery date cannot be in the past"
            return None
        return _iso(parsed.timestamp())

    def _lines(self, raw: Any, errors: dict[str, str], *, required: bool) -> list[_Line]:
        if not isinstance(raw, list) or (required and not raw):
            errors["items"] = "At least one item is required"
            return []
        lines: list[_Line] = []
        for index, item in enumerate(raw):
            where = f"items[{index}]"
            if not isinstance(item, dict):
                errors[where] = "Item must be an object"
                continue
            part_id = item.get("partId")
            part = self.parts.get(part_id) if isinstance(part_id, str) else None
            if part is None:
                errors[f"{where}.partId"] = f"Part {part_id} not found"
            quantity = item.get("quantity")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
                errors[f"{where}.quantity"] = "Quantity must be a positive integer"
            cost = item.get("unitCost")
            if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0):
                errors[f"{where}.unitCost"] = "Unit cost must be a non-negative number"
            line_notes = item.get("notes")
            if line_notes is not None and not isinstance(line_notes, str):
                errors[f"{where}.notes"] = "Notes must be a string"
            if part is not None and isinstance(quantity, int) and f"{where}.unitCost" not in errors:
                # Undocumented: a missing unitCost falls back to the part's stored cost.
                unit_cost = part.cost if cost is None else Decimal(repr(cost))
                lines.append(_Line(part, quantity, unit_cost, line_notes if isinstance(line_notes, str) else None))
        return lines


def _part_text(part: SimPart) -> tuple[str, ...]:
    return (part.part_number, part.name, part.description, part.manufacturer)


def _history(status: str, by: str, when: float, notes: str) -> dict[str, Any]:
    return {"status": status, "changedBy": by, "changedAt": _iso(when), "notes": notes}


def _locked_reason(status: str) -> str:
    if status in ("cancelled", "rejected"):
        return f"Order has been {status}"
    return "Order has already been sent to supplier"


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _ApiError(400, {"error": "Invalid order data", "details": {"body": "Body must be a JSON object"}})
    return body


def _invalid_query(field_name: str, message: str) -> NoReturn:
    raise _ApiError(400, {"error": "Invalid query parameters", "details": {field_name: message}})


def _paging(q: Any) -> tuple[int, int]:
    limit, offset = q.get("limit", str(DEFAULT_PAGE)), q.get("offset", "0")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE:
        _invalid_query("limit", f"limit must be an integer from 1 to {MAX_PAGE}")
    if not offset.isdigit():
        _invalid_query("offset", "offset must be a non-negative integer")
    return int(limit), int(offset)


def _flag(q: Any, name: str) -> bool | None:
    value = q.get(name)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        _invalid_query(name, f"{name} must be true or false")
    return value.lower() == "true"


def _parse_when(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            only = date.fromisoformat(text)
        except ValueError:
            return None
        parsed = datetime(only.year, only.month, only.day)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(q: Any, name: str, errors: dict[str, str]) -> float | None:
    raw = q.get(name)
    if raw is None:
        return None
    parsed = _parse_when(raw)
    if parsed is None:
        errors[name] = f"{name} must be an ISO 8601 date"
        return None
    return parsed.timestamp()


def _optional_text(body: dict[str, Any], name: str, errors: dict[str, str]) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        errors[name] = f"{name} must be a string"
        return None
    return value


def _address(body: dict[str, Any], errors: dict[str, str]) -> dict[str, str] | None:
    raw = body.get("shippingAddress")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors["shippingAddress"] = "Shipping address must be an object"
        return None
    for name in _ADDRESS_FIELDS:
        value = raw.get(name)
        if not isinstance(value, str) or not value.strip():
            errors[f"shippingAddress.{name}"] = f"{name} is required"
    return {name: str(raw.get(name)) for name in _ADDRESS_FIELDS}


SIMULATED = Simulated("/prod", FactoryAISimulator, SANDBOX_SETTINGS)
