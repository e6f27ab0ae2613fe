"""People, for tests: one who accepts every form, and one on the far side of an approval link (the
webhook that receives links, and a page opened and decided over plain HTTP; the browser test drives
the real thing)."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx2
from mcp.types import ElicitRequestFormParams, ElicitResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class Human:
    """Accepts every form it is shown (to place the order), and counts them."""

    def __init__(self) -> None:
        self.forms = 0

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestFormParams)
        self.forms += 1
        return ElicitResult(action="accept", content={"place_order": True})


HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


class Receiver:
    """An approvers' webhook on loopback: records every POST, answers with the statuses given, in turn."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.posts: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        self.posts.append(await request.json())
        status = self.statuses.pop(0) if self.statuses else 200
        return JSONResponse({"ok": status == 200}, status_code=status)

    @property
    def links(self) -> list[str]:
        """The approval links received, newest last."""
        return [post["url"] for post in self.posts]

    async def decide(self, decision: str, link: str | None = None) -> httpx2.Response:
        """What a person does with a link (the newest by default): open the page, press a button, whatever
        the page said (a lapsed one shows no form: the decision is sent without one)."""
        url = link or self.links[-1]
        async with httpx2.AsyncClient() as http:
            return await decide(http, url, form_of((await http.get(url)).text), decision)


def form_of(page: str) -> dict[str, str]:
    """The decision form's hidden fields in an approval page."""
    return {name: html.unescape(value) for name, value in HIDDEN.findall(page)}


async def open_page(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    """What a person sees first: the page behind the link, with its decision form."""
    page = await http.get(url)
    assert page.status_code == 200, page.text
    return form_of(page.text)


async def decide(http: httpx2.AsyncClient, url: str, form: dict[str, str], decision: str) -> httpx2.Response:
    return await http.post(url.split("?")[0], data={**form, "decision": decision})
