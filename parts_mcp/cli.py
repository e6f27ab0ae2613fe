"""parts-mcp serve | sandbox | config | intents | audit."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from parts_mcp import __version__, logs

# The configuration (and through it the configured vendors' modules) is imported by the commands that
# read it: `serve` first turns the garbage collector off for its start (see `_serve`).
if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from parts_mcp.config import Settings
    from parts_mcp.orders.sql_ledger import SqlLedger
    from parts_mcp.server.app import PartsServer

logger = logging.getLogger("parts_mcp")


def _settings(args: argparse.Namespace) -> Settings | None:
    """The configuration, or None after saying on stderr what is wrong with it."""
    from parts_mcp.config import ConfigError, load

    try:
        return load(args.config)
    except ConfigError as exc:
        print(f"parts-mcp: {exc}", file=sys.stderr)
        return None


def _refusal(settings: Settings, source: str | None) -> str | None:
    """Why `serve` would refuse to start on these (valid) settings, or None: nothing to serve, or exposed."""
    from parts_mcp.config import ConfigError, serving
    from parts_mcp.server.auth import exposure_refusal

    try:
        serving(settings, source)
    except ConfigError as exc:
        return str(exc)
    return exposure_refusal(settings.server) if settings.server.transport == "http" else None


def _serve(args: argparse.Namespace) -> int:
    # A start makes hundreds of thousands of objects that live as long as the process (modules, pydantic
    # models and schemas): collecting while they are made only walks them again and again (~10% of a cold
    # start). Once made they are frozen out of every later collection, the one at exit included.
    gc.disable()
    try:
        started = _start(args)
    finally:
        gc.enable()
    if isinstance(started, int):
        return started
    server, settings = started
    grace = settings.server.shutdown_grace_seconds
    if settings.server.transport == "stdio":
        from parts_mcp.server.transport import serve_stdio

        # stdout is the protocol; everything else goes to stderr. Hostile lines get JSON-RPC errors.
        serve_stdio(server, grace)
    else:
        from parts_mcp.server.shutdown import serve_http

        host, port = settings.server.host, settings.server.port
        logger.warning("serving streamable HTTP on http://%s:%s/mcp", host, port)
        # Logs go to stderr only, through our (redacting, escaping) handler, uvicorn's included.
        serve_http(http_app(server, settings), host=host, port=port, grace=grace)
    return 0


def _start(args: argparse.Namespace) -> tuple[PartsServer, Settings] | int:
    """The server `serve` runs and its settings (--transport, --host and --port applied), or the exit
    code after saying on stderr why it does not start."""
    from parts_mcp.config import ENV_VAR
    from parts_mcp.orders.ledger import LedgerUnavailable
    from parts_mcp.server.app import build_server

    settings = _settings(args)
    if settings is None:
        return 2
    transport = args.transport or settings.server.transport
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    # Approval links name the address really served, --host and --port included.
    served = settings.server.model_copy(update={"transport": transport, "host": host, "port": port})
    settings = settings.model_copy(update={"server": served})
    if (refusal := _refusal(settings, args.config)) is not None:
        print(f"parts-mcp: {refusal}", file=sys.stderr)
        return 2
    try:
        server = build_server(settings)
    except LedgerUnavailable as exc:
        print(f"parts-mcp: {exc}", file=sys.stderr)
        return 2
    if settings.sandbox:
        chosen = "the config's [server] sandbox = true" if args.config or os.environ.get(ENV_VAR) else "no config file"
        logger.warning("%s: serving the embedded sandbox (simulated vendors, nothing real is ordered)", chosen)
    gc.freeze()
    return server, settings


def http_app(server: PartsServer, settings: Settings) -> ASGIApp:
    """What `serve --transport http` serves: /mcp (screened, bearer-checked with [server.auth]), the
    approval page, the RFC 9728 metadata, and /healthz, /readyz and /metrics (no token: load balancers
    and scrapers); Host and Origin checked first, on every path."""
    from parts_mcp.server.auth import HostGuard, transport_security, with_metadata
    from parts_mcp.server.operations import Operations
    from parts_mcp.server.transport import GuardedHTTP

    security = transport_security(settings.server, settings.approvals.public_url)
    # Replicas on a shared ledger keep no session of their own: any replica answers any request, so a
    # load balancer needs nothing sticky (clients of the 2026-07-28 protocol send no session anyway).
    replicas = settings.store.url is not None
    mcp = server.streamable_http_app(streamable_http_path="/mcp", transport_security=security, stateless_http=replicas)
    app: ASGIApp = GuardedHTTP(mcp)
    if server.channels is not None:
        app = server.channels.beside(app)  # the approval page at /approvals/, outside the JSON-RPC screen
    if settings.server.auth is not None:
        app = with_metadata(app, settings.server.auth)
    app = Operations(app, server.ledger, settings)
    return HostGuard(app, security)


def _sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from parts_mcp.sandbox import Sandbox

    logger.warning("vendor simulators on http://%s:%s/ (index at /)", args.host, args.port)
    # log_config=None: uvicorn's records go through our handler too (--log-format json included).
    uvicorn.run(Sandbox().asgi_app(), host=args.host, port=args.port, log_level="warning", log_config=None)
    return 0


def _config(args: argparse.Namespace) -> int:
    from parts_mcp.config import ENV_VAR, example
    from parts_mcp.config_summary import describe

    if args.what == "example":
        sys.stdout.write(example())
        return 0
    # `check`: read and judge the file as `serve` would, then say what would run; start and contact nothing.
    settings = _settings(args)
    if settings is None:
        return 2
    if (refusal := _refusal(settings, args.config)) is not None:
        print(f"parts-mcp: {refusal}", file=sys.stderr)
        return 2
    chosen = args.config or os.environ.get(ENV_VAR)
    sys.stdout.write(describe(settings, f"config file {chosen}" if chosen else "no config file"))
    return 0


def _ledger(args: argparse.Namespace, *, must_exist: bool = False) -> SqlLedger | None:
    """The configured ledger, or None after saying on stderr why there is none to open."""
    from parts_mcp.orders.ledger import LedgerUnavailable
    from parts_mcp.orders.stores import open_ledger

    settings = _settings(args)
    if settings is None:
        return None
    if settings.sandbox and settings.store.path is None and settings.store.url is None:
        print("parts-mcp: the embedded sandbox keeps no ledger on disk; pass --config", file=sys.stderr)
        return None
    path = settings.store.resolved_path()
    if settings.store.url is None and must_exist and not path.exists():
        print(f"parts-mcp: there is no ledger at {path}", file=sys.stderr)
        return None
    try:
        return open_ledger(settings.store)
    except LedgerUnavailable as exc:
        print(f"parts-mcp: {exc}", file=sys.stderr)
        return None


def _operator() -> str:
    return f"operator:{os.environ.get('USER') or 'unknown'}"


def _intents(args: argparse.Namespace) -> int:
    """List the intents that need a person, or settle one after checking the vendor by hand."""
    import anyio

    from parts_mcp.domain import Order, OrderStatus
    from parts_mcp.orders.ledger import Intent, LedgerTampered, lease_owner
    from parts_mcp.orders.states import IllegalTransition, IntentState

    ledger = _ledger(args)
    if ledger is None:
        return 2
    actor = _operator()

    async def run() -> int:
        if args.action == "list":
            # Rows changed by hand need a person too, whatever state they now claim: listed, marked.
            unsettled, report = await ledger.unsettled(), await ledger.verify_audit()
            listed = {i.id: i for i in [*unsettled, *report.tampered]}
            for intent in sorted(listed.values(), key=lambda i: i.created_at):
                error = (intent.error or {}).get("code", "")
                print(
                    f"{intent.vendor}\t{intent.po_number}\t{intent.state.value}\t{intent.updated_at.isoformat()}"
                    f"\t{intent.confirmed_total}\t{intent.order_id or '-'}\t{error}"
                    f"\t{'TAMPERED' if intent.tampered else ''}"
                )
            return 0
        try:
            return await settle_one()
        except LedgerTampered as exc:
            print(f"parts-mcp: {exc}; check it (parts-mcp audit verify) before settling it", file=sys.stderr)
            return 1

    async def settle_one() -> int:
        intent = await ledger.get(args.vendor, args.po_number)
        if intent is None:
            print(f"parts-mcp: no intent for {args.vendor} PO {args.po_number}", file=sys.stderr)
            return 1
        # The operator takes the intent's lease like any server process: never while one is sending it.
        owner = lease_owner()
        current = await ledger.lease(intent.id, owner, 60.0)
        if current is None:
            print(
                f"parts-mcp: {args.vendor} PO {args.po_number} is being placed by a server process right now; "
                "settle it once that call has finished.",
                file=sys.stderr,
            )
            return 1
        try:
            await settle(current)
        except IllegalTransition as exc:
            # The state table decides, as it does for the server: a settled intent stays settled.
            print(
                f"parts-mcp: {args.vendor} PO {args.po_number} is {exc.current.value}: cannot settle it as "
                f"{args.action.replace('-', ' ')}",
                file=sys.stderr,
            )
            return 1
        finally:
            await ledger.release(intent.id, owner)
        print(f"{args.vendor} PO {args.po_number}: settled as {args.action.replace('-', ' ')}")
        return 0

    async def settle(intent: Intent) -> None:
        if args.action == "placed":
            order = Order(
                vendor=intent.vendor,
                order_id=args.order_id,
                po_number=intent.po_number,
                status=OrderStatus.UNKNOWN,
                source="ledger",
                details={"settled_by": actor, "confirmed_total": intent.confirmed_total},
            )
            await ledger.transition(
                intent.id, IntentState.PLACED, actor=actor, order_id=args.order_id, order=order.model_dump(mode="json")
            )
        else:
            await ledger.transition(
                intent.id,
                IntentState.REJECTED,
                actor=actor,
                error={"code": "SETTLED_NOT_PLACED", "message": "checked at the vendor: no order"},
            )

    try:
        return anyio.run(run)
    finally:
        ledger.close()


def _audit(args: argparse.Namespace) -> int:
    """Check the ledger's audit chain and intent seals; or, after a person has checked, accept it as it is."""
    import anyio

    ledger = _ledger(args, must_exist=True)
    if ledger is None:
        return 2

    async def run() -> int:
        if args.action == "verify":
            report = await ledger.verify_audit()
            print(report)
            if not report.intact:
                print(
                    "Check the vendors' own records against this ledger (parts-mcp intents list), then accept it "
                    "as it is: parts-mcp audit reseal --reason '...'",
                    file=sys.stderr,
                )
            return 0 if report.intact else 1
        accepted = await ledger.reseal(_operator(), args.reason)
        if accepted.intact:
            print(f"nothing to accept: {accepted}")
        else:
            print(f"accepted by {_operator()} (recorded in the audit log as audit_resealed): {accepted}")
        return 0

    try:
        return anyio.run(run)
    finally:
        ledger.close()


class _Parser(argparse.ArgumentParser):
    """Every command and subcommand takes the logging options, before or after its name: subparsers are
    made of this class too (argparse's default), so a subcommand added later has them as well."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        given = self.add_argument_group("logging (to stderr)")
        # SUPPRESS: an option given before the subcommand is not reset by the subcommand's default.
        given.add_argument(
            "--log-level",
            choices=logs.LEVELS,
            default=argparse.SUPPRESS,
            help=f"default: ${logs.ENV_LEVEL}, else info",
        )
        given.add_argument(
            "--log-format",
            choices=logs.FORMATS,
            default=argparse.SUPPRESS,
            help=f"json: one object per line (default: ${logs.ENV_FORMAT}, else text)",
        )
        given.add_argument(
            "-v",
            "--verbose",
            dest="log_level",
            action="store_const",
            const="debug",
            default=argparse.SUPPRESS,
            help="same as --log-level debug",
        )


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="parts-mcp", description="MCP server for guarded parts ordering")
    parser.add_argument("--version", action="version", version=f"parts-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the MCP server (no config: on the embedded sandbox)")
    serve.add_argument("--config", help="TOML config file (default: $PARTS_MCP_CONFIG, else the sandbox)")
    serve.add_argument("--transport", choices=["stdio", "http"], help="default: [server].transport or stdio")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8765)")
    serve.set_defaults(run=_serve)

    sandbox = commands.add_parser("sandbox", help="serve the vendor simulators on loopback HTTP")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8766)
    sandbox.set_defaults(run=_sandbox)

    config = commands.add_parser("config", help="the configuration: print the documented example, or check a file")
    what = config.add_subparsers(dest="what", required=True)
    what.add_parser("example", help="print config.example.toml")
    check = what.add_parser("check", help="validate a config and print what `serve` would run (starts nothing)")
    check.add_argument("config", nargs="?", metavar="FILE", help="TOML config file (default: $PARTS_MCP_CONFIG)")
    config.set_defaults(run=_config)

    intents = commands.add_parser(
        "intents", help="orders whose outcome is unknown: list them, or settle one after checking the vendor"
    )
    intents.add_argument("--config", help="TOML config file (default: $PARTS_MCP_CONFIG)")
    actions = intents.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="pending, sent and unknown intents, oldest first (tab-separated)")
    placed = actions.add_parser("placed", help="the vendor has this order: record it (frees nothing)")
    placed.add_argument("vendor")
    placed.add_argument("po_number")
    placed.add_argument("--order-id", required=True, help="the vendor's order id, as found in its own system")
    not_placed = actions.add_parser("not-placed", help="the vendor has no such order: the PO may be used again")
    not_placed.add_argument("vendor")
    not_placed.add_argument("po_number")
    intents.set_defaults(run=_intents)

    audit = commands.add_parser("audit", help="the ledger's tamper-evident audit log")
    audit.add_argument("--config", help="TOML config file (default: $PARTS_MCP_CONFIG)")
    checks = audit.add_subparsers(dest="action", required=True)
    checks.add_parser("verify", help="check the audit chain and every intent's seal; exit 1 naming the first break")
    reseal = checks.add_parser(
        "reseal", help="after checking a broken ledger by hand: accept it as it is now (recorded, with your reason)"
    )
    reseal.add_argument("--reason", required=True, help="what was checked, for the audit log")
    audit.set_defaults(run=_audit)

    args = parser.parse_args(argv)
    try:
        level, fmt = logs.choose(getattr(args, "log_level", None), getattr(args, "log_format", None))
    except ValueError as exc:
        print(f"parts-mcp: {exc}", file=sys.stderr)
        return 2
    logs.configure(level, fmt)  # redacted, one line per record; session chatter only at debug
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
