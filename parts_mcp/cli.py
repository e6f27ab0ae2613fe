"""parts-mcp serve | sandbox."""

from __future__ import annotations

import argparse
import logging
import sys

from parts_mcp import __version__
from parts_mcp.config import ConfigError, load

logger = logging.getLogger("parts_mcp")


def _serve(args: argparse.Namespace) -> int:
    from parts_mcp.server.app import build_server

    try:
        settings = load(args.config)
    except ConfigError as exc:
        print(f"parts-mcp: {exc}", file=sys.stderr)
        return 2
    transport = args.transport or settings.server.transport
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    server = build_server(settings)
    if settings.sandbox:
        logger.warning("no config file: serving the embedded sandbox (simulated vendors, nothing real is ordered)")
    if transport == "stdio":
        server.run()  # stdout is the protocol; everything else goes to stderr
    else:
        import uvicorn

        logger.warning("serving streamable HTTP on http://%s:%s/mcp", host, port)
        app = server.streamable_http_app(streamable_http_path="/mcp", host=host)
        # Logs to stderr only, like stdio mode: uvicorn's access log would otherwise go to stdout.
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from parts_mcp.sandbox import Sandbox

    logger.warning("vendor simulators on http://%s:%s/ (index at /)", args.host, args.port)
    uvicorn.run(Sandbox().asgi_app(), host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parts-mcp", description="MCP server for guarded parts ordering")
    parser.add_argument("--version", action="version", version=f"parts-mcp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (to stderr)")
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

    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # One line per vendor request is noise for an operator; -v shows them.
        for noisy in ("httpx2", "httpcore", "httpcore2"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
