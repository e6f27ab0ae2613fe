"""The approval page: where a person, not the model, approves or declines an order.

GET /approvals/{id}?k=<secret> shows the request exactly as it would be sent; one POST form carries the
decision back. Plain server-rendered HTML: no script, no external resource, everything escaped (vendor
and assistant text is data, shown as theirs). The link secret is the person's: it never reaches a log
(it is taken out of the request's query before the response starts, which is what uvicorn's access log
prints) and the page tells the browser not to store it or send it on (no-store, no-referrer).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from base64 import b64encode
from collections.abc import Callable, Mapping
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from parts_mcp.domain import Money, Order, OrderLine, Preview
from parts_mcp.orders.approvals import ApprovalDecision, ApprovalRefused, ApprovalRequest, ApprovalView, Desk
from parts_mcp.untrusted import clean_text

DeskSource = Callable[[], Desk | None]

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#111;background:#fff}
main{max-width:56rem;margin:0 auto;padding:1rem 1.5rem 3rem}
.sandbox{background:#ffe08a;border:3px dashed #8a5a00;padding:.5rem 1rem;font-weight:bold}
.warn{background:#fdecea;border-left:6px solid #b3261e;padding:.5rem 1rem}
.theirs{border-left:6px solid #6b6b6b;background:#f4f4f4;padding:.25rem 1rem;margin:1rem 0}
.who{font-size:.9rem;color:#444;font-style:italic}
table{border-collapse:collapse;width:100%;margin:1rem 0}
caption{text-align:left;font-weight:bold;padding:.25rem 0}
th,td{border:1px solid #999;padding:.35rem .5rem;text-align:left;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dl.facts dt{font-weight:bold}
dl.facts dd{margin:0}
fieldset{border:2px solid #333;padding:1rem;margin-top:1.5rem}
button{font:inherit;font-weight:bold;padding:.6rem 1.2rem;margin:.25rem .75rem .25rem 0;border-radius:4px}
.approve{background:#0b6b2f;color:#fff;border:2px solid #064d21}
.decline{background:#fff;color:#8c1d18;border:2px solid #8c1d18}
button:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}
"""
_STYLE_HASH = b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# Nothing but our own inline style may load or run; forms post only back to us; no page may frame this
# one (a framed Approve button could be clicked through a decoy).
_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the page's URL carries the link secret
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_FORM_LIMIT = 8192  # a decision form is a few hundred bytes
_REFUSED_STATUS = {
    "NOT_FOUND": 404,
    "LINK_INVALID": 404,
    "EXPIRED": 410,
    "ALREADY_DECIDED": 409,
    "PAGE_CHANGED": 409,
    "SECOND_PERSON_REQUIRED": 403,
}
_DECIDED = {
    "approved": "It was approved.",
    "declined": "It was declined: nothing was ordered.",
    "expired": "It expired: nothing was ordered.",
    "superseded": "It was replaced by a newer request for the same order.",
}


def routes(desk: DeskSource, *, public_url: str | None = None) -> list[Route]:
    """The page's routes; `desk()` is the live desk (None until the server has started).

    `public_url`: the base of approval links when a proxy in front changes the Host, so a POST from a
    page served at that origin is recognised as our own.
    """
    page = _Page(desk, public_url)
    return [
        Route("/approvals/{approval_id}", page.show, methods=["GET"]),
        Route("/approvals/{approval_id}", page.decide, methods=["POST"]),
    ]


def app(desk: DeskSource, *, public_url: str | None = None) -> Starlette:
    """The page alone, for the loopback listener a stdio server starts when it needs one."""
    return Starlette(routes=routes(desk, public_url=public_url))


class _Page:
    def __init__(self, desk: DeskSource, public_url: str | None) -> None:
        self._desk = desk
        self._public = _origin(public_url) if public_url else None
        # The CSRF token is an HMAC of the request and the page token under a key only this process holds:
        # a decision must come from a form this process rendered (a hand-built POST with the link alone is
        # refused, and so is a form from before a restart). Stateless, so no cookie, and nothing is shared
        # across ports of 127.0.0.1 (cookies are). A foreign page cannot read our pages to learn the
        # token; against one that knows it anyway, the Origin / Sec-Fetch-Site checks in `decide` hold.
        self._key = secrets.token_bytes(32)

    def _csrf(self, approval_id: str, page_token: str) -> str:
        return hmac.new(self._key, f"{approval_id}\n{page_token}".encode(), hashlib.sha256).hexdigest()

    async def show(self, request: Request) -> Response:
        approval_id, secret = request.path_params["approval_id"], _take_secret(request)
        desk = self._desk()
        if desk is None:
            return _unavailable()
        if not secret:
            return _refused(ApprovalRefused("LINK_INVALID", ""))
        try:
            view = await desk.view(approval_id, secret)
        except ApprovalRefused as exc:
            return _refused(exc)
        form = {"k": secret, "page_token": view.page_token, "csrf": self._csrf(approval_id, view.page_token)}
        page = _request_page(view, request.url.path, form)
        return _html(200, _title(view.request), page, sandbox=view.request.sandbox)

    async def decide(self, request: Request) -> Response:
        approval_id = request.path_params["approval_id"]
        form = await _read_form(request)
        if form is None:
            return _page(400, "Refused", "<p>That is not a decision form. Nothing was changed.</p>")
        foreign = _cross_site(request, self._public)
        expected = self._csrf(approval_id, form.get("page_token", ""))
        if foreign or not hmac.compare_digest(form.get("csrf", ""), expected):
            reason = foreign or "it did not come from this approval page"
            return _page(403, "Refused", f"<p>This decision was refused: {escape(reason)}. Nothing was changed.</p>")
        if form.get("decision") not in ("approve", "decline"):
            return _page(400, "Refused", "<p>Choose Approve or Decline on the approval page.</p>")
        desk = self._desk()
        if desk is None:
            return _unavailable()
        client = request.client.host if request.client else "unknown address"
        try:
            decision = await desk.decide(
                approval_id,
                form.get("k", ""),
                form.get("page_token", ""),
                approve=form["decision"] == "approve",
                decided_by=f"approval page ({client})",
            )
        except ApprovalRefused as exc:
            return _refused(exc)
        if decision.kind == "changed" and decision.renewed and decision.renewed[1].secret:
            # POST-redirect-GET to the new request: the person reviews the new prices before anything is sent.
            renewed, link = decision.renewed
            base = request.url.path.rsplit("/", 1)[0]
            location = f"{base}/{quote(renewed.approval_id, safe='')}?{urlencode({'k': link.secret})}"
            return RedirectResponse(location, status_code=303, headers=_HEADERS)
        return _html(200, _OUTCOME_TITLES[decision.kind], _outcome(decision))


def _take_secret(request: Request) -> str:
    """The link secret from the query, removed from the request: uvicorn's access log prints this scope's query."""
    pairs = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    request.scope["query_string"] = urlencode([(k, v) for k, v in pairs if k != "k"]).encode()
    return next((v for k, v in pairs if k == "k"), "")


async def _read_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form of at most _FORM_LIMIT bytes (read incrementally: a huge body is not buffered)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_LIMIT:
            return None
    return dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))


def _cross_site(request: Request, public: str | None) -> str | None:
    """Why this POST looks sent by another site's page, or None.

    Browsers set Sec-Fetch-Site and Origin themselves; a page cannot forge them. Another port of
    127.0.0.1 is "same-site" but not same-origin, hence the stricter test. With Referrer-Policy
    no-referrer a browser sends `Origin: null` even for our own form, so null passes only where
    Sec-Fetch-Site vouches for it.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"it was sent from another site's page (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is None or (origin == "null" and site == "same-origin"):
        return None
    own = {_origin(f"{request.url.scheme}://{request.headers.get('host', '')}"), public}
    return None if _origin(origin) in own else "it was sent from another site's page"


def _origin(url: str) -> str:
    parts = urlsplit(url.strip().lower())
    return f"{parts.scheme}://{parts.netloc}"


# -- rendering -----------------------------------------------------------------------------------------


def _text(value: Any, limit: int = 2000) -> str:
    """Any text as one escaped plain line: no markup, controls or bidi overrides reach the page."""
    return escape(clean_text(value, limit), quote=True)


def _theirs(value: Any) -> str:
    # <bdi>: right-to-left vendor text cannot reorder the words around it.
    return f"<bdi>{_text(value)}</bdi>"


def _money(amount: Money | None) -> str:
    return escape(str(amount)) if amount is not None else "unknown"


def _when(moment: datetime) -> str:
    return f'<time datetime="{escape(moment.isoformat())}">{escape(moment.strftime("%Y-%m-%d %H:%M %Z"))}</time>'


def _html(status: int, title: str, body: str, *, sandbox: bool = False) -> HTMLResponse:
    banner = (
        '<p class="sandbox" role="note">SANDBOX: simulated vendors. Approving orders nothing real.</p>'
        if sandbox
        else ""
    )
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · parts-mcp</title><style>{_STYLE}</style></head>"
        f"<body><main>{banner}{body}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_HEADERS)


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return _html(status, title, f"<h1>{escape(title)}</h1>{body}")


def _unavailable() -> HTMLResponse:
    return _page(503, "Not ready yet", "<p>parts-mcp is still starting. Reload this page in a moment.</p>")


def _refused(exc: ApprovalRefused) -> HTMLResponse:
    if exc.code == "ALREADY_DECIDED" and exc.state == "expired":  # lapsed earlier: still gone, not decided
        exc = ApprovalRefused("EXPIRED", exc.message, state="expired")
    status = _REFUSED_STATUS.get(exc.code, 400)
    if status == 404:  # the same page whether the id exists or not
        return _page(404, "This approval link is not valid", "<p>Check that the whole link was copied.</p>")
    title, after = _REFUSED_PAGES.get(exc.code, ("Refused", ""))
    if exc.code == "ALREADY_DECIDED":
        after = _DECIDED.get(exc.state or "", "")
    return _page(status, title, f"<p>{_text(exc.message)}</p><p>{escape(after)}</p>")


_REFUSED_PAGES = {
    "EXPIRED": ("This approval request has expired", "Nothing was ordered."),
    "ALREADY_DECIDED": ("Already decided", ""),
    "SECOND_PERSON_REQUIRED": ("A second person must approve this order", "Nothing was ordered."),
    "PAGE_CHANGED": (
        "The order changed since this page was opened",
        "Nothing was ordered. Open the approval link again to see the order as it is now.",
    ),
}


def _title(request: ApprovalRequest) -> str:
    return f"Approve purchase order {clean_text(request.po_number, 80)} from {clean_text(request.display_name, 80)}?"


def _request_page(view: ApprovalView, action: str, form: Mapping[str, str]) -> str:
    request, preview = view.request, view.request.preview
    facts = [
        ("Vendor", f"{_theirs(request.display_name)} ({_text(request.vendor)})"),
        ("Purchase order", _text(preview.po_number)),
        ("Total", f"<strong>{_money(preview.total)}</strong> ({_basis(preview)})"),
        ("Requested by", f"{_text(request.requested_by)}, {_when(request.requested_at)}"),
        ("Decide before", _when(request.expires_at)),
    ]
    body = [
        f"<h1>{escape(_title(request))}</h1>",
        "<p>An AI assistant asked to place this order. <strong>Nothing has been ordered yet.</strong> "
        "Only a person with this link can approve it; the assistant cannot.</p>",
        '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
        _lines_table(preview),
        _totals(preview),
        _list("Warnings from parts-mcp", request.warnings, warn=True),
        _vendor_section(preview),
        _assistant_section(preview),
        _second_person(request) if request.second_person else _decision_form(preview, action, form),
    ]
    return "".join(body)


def _basis(preview: Preview) -> str:
    basis = f"{escape(preview.price_basis.value)} prices"
    if preview.total_is_upper_bound:
        basis += "; an upper bound: the vendor may bill less, never more"
    return basis


def _lines_table(preview: Preview) -> str:
    head = "".join(
        f'<th scope="col"{" class=num" if n in (2, 3, 4) else ""}>{h}</th>'
        for n, h in enumerate(["Part number", "Name", "Quantity", "Unit price", "Line total", "Price basis"])
    )
    rows = "".join(_line_row(line, preview) for line in preview.lines)
    return (
        f"<table><caption>Lines on PO {_text(preview.po_number)} ({len(preview.lines)}; part numbers and "
        f"names as the vendor gives them)</caption><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
        f'<tfoot><tr><th scope="row" colspan="4">Total ({escape(preview.currency)})</th>'
        f'<td class="num"><strong>{_money(preview.total)}</strong></td><td></td></tr></tfoot></table>'
    )


def _line_row(line: OrderLine, preview: Preview) -> str:
    cells = [
        f'<td class="num">{line.quantity}</td>',
        f'<td class="num">{_money(line.unit_price)}</td>',
        f'<td class="num">{_money(line.line_total)}</td>',
        f"<td>{escape(preview.price_basis.value)}</td>",
    ]
    name = _theirs(line.name) if line.name else ""
    return f'<tr><th scope="row">{_theirs(line.part_number)}</th><td>{name}</td>{"".join(cells)}</tr>'


def _totals(preview: Preview) -> str:
    parts: list[str] = []
    if preview.excludes:
        excluded = ", ".join(_theirs(x) for x in preview.excludes)
        parts.append(f"<p>Not included: {excluded} (the vendor adds them when the order is created).</p>")
    if preview.approval_limit is not None and preview.approval_limit != preview.total:
        parts.append(
            f'<p class="warn">Approving allows the vendor to bill up to <strong>{_money(preview.approval_limit)}'
            "</strong>, the charges it adds included. A higher bill is cancelled where the vendor allows, "
            "otherwise reported at once.</p>"
        )
    return "".join(parts)


def _list(heading: str, items: list[str], *, warn: bool = False, who: str = "") -> str:
    if not items:
        return ""
    entries = "".join(f"<li>{_theirs(item)}</li>" for item in items)
    cls = "warn" if warn else "theirs"
    note = f'<p class="who">{who}</p>' if who else ""
    return f'<section class="{cls}"><h2>{escape(heading)}</h2>{note}<ul>{entries}</ul></section>'


def _vendor_section(preview: Preview) -> str:
    # Caveats are parts-mcp's notes on this vendor's terms, often quoting the vendor: marked as such.
    who = "About this vendor's prices and terms. Words quoted from the vendor are theirs, not checked by parts-mcp."
    return _list("Caveats", list(preview.caveats), who=who)


def _assistant_section(preview: Preview) -> str:
    if not preview.notes and not preview.options:
        return ""
    who = "Written by the AI assistant (or, for options it left out, this server's configured defaults). Check it."
    notes = f"<h3>Notes</h3><p>{_theirs(preview.notes)}</p>" if preview.notes else ""
    options = "".join(f"<dt>{_text(k)}</dt><dd>{_theirs(v)}</dd>" for k, v in _flat_options(preview.options))
    options = f'<h3>Ship-to and options</h3><dl class="facts">{options}</dl>' if options else ""
    return f'<section class="theirs"><h2>From the assistant</h2><p class="who">{who}</p>{notes}{options}</section>'


def _flat_options(options: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    flat: list[tuple[str, str]] = []
    for key, value in sorted(options.items()):
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and prefix.count(".") < 4:
            flat += _flat_options(value, f"{name}.")  # type: ignore[arg-type]
        else:
            flat.append((name, ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)))  # type: ignore[arg-type]
    return flat


def _second_person(request: ApprovalRequest) -> str:
    # A link names nobody, and this order needs a named second person: they decide where they are signed in.
    return (
        '<section aria-labelledby="four-eyes"><h2 id="four-eyes">A second person approves this order</h2>'
        "<p>It is above this organisation's four-eyes limit. Someone with the orders:approve permission, other "
        "than its requester, approves or declines it from their own signed-in assistant: "
        f"<code>approve_order</code> with approval_id <code>{escape(request.approval_id)}</code>.</p></section>"
    )


def _decision_form(preview: Preview, action: str, form: Mapping[str, str]) -> str:
    hidden = "".join(f'<input type="hidden" name="{k}" value="{escape(v, quote=True)}">' for k, v in form.items())
    return (
        f'<form method="post" action="{escape(action, quote=True)}"><fieldset><legend>Your decision</legend>{hidden}'
        f'<button type="submit" name="decision" value="approve" class="approve">Approve and order for '
        f"{_money(preview.total)}</button>"
        '<button type="submit" name="decision" value="decline" class="decline">Decline</button>'
        "<p>Approving sends this order to the vendor once. Declining orders nothing.</p></fieldset></form>"
    )


_OUTCOME_TITLES = {
    "placed": "Order placed",
    "billed_above_approval": "Order placed, billed above what you approved",
    "outcome_unknown": "Outcome not known yet",
    "refused": "The vendor refused the order",
    "declined": "Declined: nothing was ordered",
    "changed": "The prices changed: nothing was ordered",
}


def _outcome(decision: ApprovalDecision) -> str:
    title = _OUTCOME_TITLES[decision.kind]
    warn = ' class="warn"' if decision.kind in ("billed_above_approval", "outcome_unknown", "refused") else ""
    return f"<h1>{escape(title)}</h1><p{warn}>{_text(decision.message)}</p>{_order(decision.order)}"


def _order(order: Order | None) -> str:
    if order is None:
        return ""
    raw = order.vendor_status if order.vendor_status != order.status.value else None
    facts = [
        ("Vendor", _text(order.vendor)),
        ("Order id", _theirs(order.order_id)),
        ("Purchase order", _text(order.po_number or "")),
        ("Status", escape(order.status.value) + (f" (the vendor's: {_theirs(raw)})" if raw else "")),
        ("Billed total", _money(order.total)),
    ]
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
