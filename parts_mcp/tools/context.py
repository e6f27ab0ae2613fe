"""What every tool reaches through `ctx: Context[AppContext]`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context

from parts_mcp.approvals.channels import Channels
from parts_mcp.orders.service import OrdersService


@dataclass(frozen=True)
class AppContext:
    service: OrdersService
    sandbox: bool
    channels: Channels  # what brings an approval link to a person (never to the model)
    local_principal: str = ""  # stdio: the one local user; HTTP: "" (each request's token names its person)
    signed_in: bool = False  # people sign in ([server.auth]): a second person can be told apart


AppCtx: TypeAlias = Context[AppContext]


def app(ctx: AppCtx) -> AppContext:
    return ctx.request_context.lifespan_context


def principal(ctx: AppCtx) -> str:
    """The person asking: the verified bearer token's, else the local user over stdio; "" when unknown."""
    token = get_access_token()
    if token is None:
        return app(ctx).local_principal
    named = (token.claims or {}).get("principal")
    return str(named or token.subject or token.client_id)


def actor(ctx: AppCtx) -> str:
    """Who is asking, for the audit log: the person, and the client's declared name and version."""
    params = ctx.session.client_params
    info = params.client_info if params is not None else None
    client = f"{info.name}/{info.version}" if info is not None else "unidentified-client"
    person = principal(ctx)
    return f"{person} via {client}" if person else client


def shows_forms(ctx: AppCtx) -> bool:
    """The client can put a form in front of its user (a bare `elicitation: {}` means forms)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def shows_links(ctx: AppCtx) -> bool:
    """The client declared URL elicitation: it shows a link to its user, not to the model."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and elicitation.url is not None
