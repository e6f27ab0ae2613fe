"""What every tool reaches through `ctx: Context[AppContext]`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from mcp.server.mcpserver import Context

from parts_mcp.approvals.channels import Channels
from parts_mcp.orders.service import OrdersService


@dataclass(frozen=True)
class AppContext:
    service: OrdersService
    sandbox: bool
    channels: Channels  # what brings an approval link to a person (never to the model)


AppCtx: TypeAlias = Context[AppContext]


def app(ctx: AppCtx) -> AppContext:
    return ctx.request_context.lifespan_context


def actor(ctx: AppCtx) -> str:
    """Who is asking, for the audit log: the client's declared name and version when it gave them."""
    params = ctx.session.client_params
    info = params.client_info if params is not None else None
    return f"{info.name}/{info.version}" if info is not None else "unidentified-client"
