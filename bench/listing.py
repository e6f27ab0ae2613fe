"""Listing at scale: one page of list_purchase_orders at 1k / 10k / 100k orders in the ledger.

`python -m bench.listing [--sizes 1000 10000 100000] [--store sqlite|postgres]` (the SQLite store is
also part of `python -m bench`; PostgreSQL runs on a throw-away server from the OS's binaries).

Each size is filled once (a subprocess) and measured in a fresh subprocess, so the peak memory
printed is the measuring process's own: its peak RSS (getrusage) and the peak of Python's
allocations during the measured calls (tracemalloc, on a separate call so it does not slow the
timed ones). Calls go through the SDK Client on the embedded sandbox, like the `overhead` bench:
`vendor="skynet"` is answered from the ledger alone; no vendor is the ledger plus every listing
vendor's simulator. The deep page starts from a cursor at the middle of the ledger's orders.

Filling: only the ledger's public methods (`claim`, then `transition` to sent and to placed, as
placement does), one order a second apart. A fill is fsync-bound, so the ledgers live on tmpfs
(/dev/shm) where there is one; reads come from the page cache either way. `--workdir DIR` keeps
the filled ledgers between runs.
A store is a factory from a directory to a `Ledger`: add one to `STORES` to measure another.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from mcp import Client

from parts_mcp.config import Settings
from parts_mcp.domain import Money, Order, OrderLine, OrderStatus, OrderSummary, Preview, PriceBasis
from parts_mcp.orders import listing
from parts_mcp.orders.ledger import Intent, Ledger
from parts_mcp.orders.states import IntentState
from parts_mcp.sandbox import Sandbox
from parts_mcp.server.app import build_server
from parts_mcp.vendors.base import OrderQuery

if TYPE_CHECKING:
    from bench.postgres import Postgres


def _sqlite(directory: Path) -> Ledger:
    from parts_mcp.orders.sqlite_ledger import SQLiteLedger

    return SQLiteLedger(directory / "listing.sqlite3")


def _postgres(directory: Path) -> Ledger:
    from parts_mcp.orders.postgres_ledger import PostgresLedger

    # The database of this size, made by `run` on its throw-away server (bench.postgres).
    return PostgresLedger((directory / "url").read_text(), "bench-ledger-key-of-at-least-32-chars")


STORES: dict[str, Callable[[Path], Ledger]] = {"sqlite": _sqlite, "postgres": _postgres}
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
VENDOR = "skynet"  # a vendor without an order listing: its orders are the ledger's
ROUNDS = 15  # at most; fewer (3 at least) where one call takes longer than a third of a second


def order_at(i: int) -> Order:
    price = Money(amount=Decimal("0.42"), currency="USD")
    line = OrderLine.priced(part_id=None, part_number="MS21042L3", name="Nut", quantity=i % 9 + 1, unit_price=price)
    return Order(
        vendor=VENDOR,
        order_id=f"SKY-{i:07d}",
        po_number=f"BENCH-{i:07d}",
        status=OrderStatus.DRAFT,
        vendor_status="draft",
        lines=[line],
        total=line.line_total,
        currency="USD",
        created_at=EPOCH + timedelta(seconds=i),
    )


def intent_for(order: Order) -> Intent:
    assert order.po_number is not None and order.created_at is not None and order.total is not None
    preview = Preview(
        vendor=VENDOR,
        po_number=order.po_number,
        lines=order.lines,
        subtotal=order.total,
        total=order.total,
        currency="USD",
        price_basis=PriceBasis.CONTRACT,
    )
    return Intent(
        id=str(uuid.uuid4()),
        vendor=VENDOR,
        po_number=order.po_number,
        content_hash=uuid.uuid4().hex,
        attempt=1,
        idempotency_key=uuid.uuid4().hex,
        state=IntentState.PENDING,
        request={"items": [{"part_id": "bench", "quantity": order.lines[0].quantity}], "notes": None, "options": {}},
        preview=preview.model_dump(mode="json"),
        confirmed_total=str(order.total),
        confirmed_by="bench",
        created_at=order.created_at,
        updated_at=order.created_at,
    )


async def fill(ledger: Ledger, size: int) -> None:
    for i in range(size):
        order = order_at(i)
        intent = intent_for(order)
        await ledger.claim(intent, None, "bench")
        await ledger.transition(intent.id, IntentState.SENT, actor="bench")
        await ledger.transition(
            intent.id,
            IntentState.PLACED,
            actor="bench",
            order_id=order.order_id,
            order=order.model_dump(mode="json"),
        )


def deep_cursor(size: int) -> str:
    """A cursor in the middle of the ledger's orders, as the tool would issue it after half the pages."""
    position = listing.sort_key(OrderSummary.of(order_at(size // 2)))
    return listing.encode_cursor(position, listing.fingerprint_of(VENDOR, OrderQuery()))


async def measure(ledger: Ledger, size: int) -> dict[str, Any]:
    server = build_server(Settings(sandbox=True), sandbox=Sandbox(), ledger=ledger)
    calls = {
        "first page, skynet (ledger)": {"vendor": VENDOR, "limit": 20},
        "deep page, skynet (ledger)": {"vendor": VENDOR, "limit": 20, "cursor": deep_cursor(size)},
        "first page, every vendor": {"limit": 20},
    }
    figures: dict[str, Any] = {}
    async with Client(server) as client:
        for name, args in calls.items():
            start = time.perf_counter()
            result = await client.call_tool("list_purchase_orders", args)
            assert not result.is_error and result.structured_content, result.content
            assert len(result.structured_content["orders"]) == 20, result.structured_content
            samples: list[float] = []
            for _ in range(max(3, min(ROUNDS, int(5 / (time.perf_counter() - start))))):
                start = time.perf_counter()
                await client.call_tool("list_purchase_orders", args)
                samples.append((time.perf_counter() - start) * 1000)
            tracemalloc.start()
            await client.call_tool("list_purchase_orders", args)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            figures[name] = {"ms": statistics.median(samples), "alloc_mb": peak / 2**20}
    figures["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def child(store: str, size: int, directory: Path, action: str) -> None:
    ledger = STORES[store](directory)
    try:
        if action == "fill":
            anyio.run(fill, ledger, size)
        else:
            print(json.dumps(anyio.run(measure, ledger, size)))
    finally:
        ledger.close()


def run(store: str, sizes: list[int], workdir: Path) -> None:
    if store != "postgres":
        _run(store, sizes, workdir, None)
        return
    from bench.postgres import running

    with running() as server:  # a throw-away PostgreSQL: its ledgers are filled anew on every run
        _run(store, sizes, workdir, server)


def _run(store: str, sizes: list[int], workdir: Path, server: Postgres | None) -> None:
    print(f"listing, {store} store: median of 3-{ROUNDS} calls, limit 20; alloc = peak Python allocations of one call")
    for size in sizes:
        directory = workdir / f"{store}-{size}"
        directory.mkdir(parents=True, exist_ok=True)
        if server is not None:
            (directory / "url").write_text(server.fresh_database())
            (directory / "filled").unlink(missing_ok=True)
        filled = directory / "filled"
        if not filled.exists():
            start = time.perf_counter()
            _spawn(store, size, directory, "fill")
            filled.touch()
            print(f"  {size:>7} orders filled in {time.perf_counter() - start:.0f} s")
        figures = json.loads(_spawn(store, size, directory, "measure"))
        rss = figures.pop("maxrss_mb")
        for name, f in figures.items():
            print(f"  {size:>7} orders  {name:<28} {f['ms']:9.1f} ms  alloc {f['alloc_mb']:8.1f} MB")
        print(f"  {size:>7} orders  peak RSS of the measuring process {rss:.0f} MB")


def _spawn(store: str, size: int, directory: Path, action: str) -> str:
    command = [sys.executable, "-m", "bench.listing", "--child", action, "--store", store, "--sizes", str(size)]
    done = subprocess.run([*command, "--workdir", str(directory)], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{action} at {size} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.listing")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--store", choices=sorted(STORES), default="sqlite")
    parser.add_argument("--workdir", type=Path, help="keep filled ledgers here (default: a temporary directory)")
    parser.add_argument("--child", choices=("fill", "measure"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.store, args.sizes[0], args.workdir, args.child)
    elif args.workdir:
        run(args.store, args.sizes, args.workdir)
    else:
        shm = Path("/dev/shm")  # a private temporary directory inside it
        with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
            run(args.store, args.sizes, Path(tmp))


if __name__ == "__main__":
    main()
