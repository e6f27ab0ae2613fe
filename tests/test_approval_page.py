"""The approval page, driven by a real headless Chromium (Debian's own, through Selenium).

A person, not the model, approves: each test places an order as a client without forms does
(`awaiting_approval`), takes the link the way a person gets it, and decides in the browser. The
simulator's own records say what was ordered. Without Chromium and its driver only the browser
tests are skipped, with the reason; `.ci/run` installs both.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from parts_mcp.approvals.page import app as page_app
from parts_mcp.sandbox._faults import HOSTILE_TEXT

from conftest import World, serve, structured

pytestmark = pytest.mark.asyncio

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = [
    *("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"),
    *("--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"),
    "--window-size=1000,900",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "approval-page.png"
WAIT = 15  # seconds: the most a page load or a decision may take
LINES = {"MS21042L3": 2, "AN960C10": 100}


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.skip(
            f"browser test skipped: {' and '.join(missing)} not installed "
            "(apt-get install chromium chromium-driver; .ci/run does this)"
        )
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in [*FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


class Links(logging.Handler):
    """Approval links as the sandbox hands them to a person when no other channel reaches one: its log."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.urls: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.urls += re.findall(r"open (http://\S+)", record.getMessage())


@contextmanager
def approval_server(tmp_path: Path) -> Iterator[tuple[World, str, Links]]:
    """The real server in `approval` mode over HTTP on 127.0.0.1, the approval page beside /mcp.

    World's settings keep the stdio default, so the links it hands out point at the loopback listener a
    stdio server starts for the page (the desktop case); the page beside /mcp decides through the same desk.
    """
    world, links = World(tmp_path, confirmation="approval"), Links()
    channels = logging.getLogger("parts_mcp.approvals.channels")
    channels.addHandler(links)
    assert world.server.channels is not None
    try:
        with serve(world.server.channels.beside(world.server.streamable_http_app(host="127.0.0.1"))) as base:
            yield world, base, links
    finally:
        channels.removeHandler(links)
        world.ledger.close()


async def request_approval(
    base: str,
    links: Links,
    po: str,
    lines: dict[str, int] = LINES,
    vendor: str = "skynet",
    notes: str = "Deliver to dock 4",
) -> str:
    """Ask for the order as the model would (the first orderable offer for each query); the approval
    page's URL, as a person receives it."""
    async with Client(base + "/mcp") as client:
        items = []
        for query, quantity in lines.items():
            found = structured(await client.call_tool("lookup_parts", {"query": [query], "vendors": [vendor]}))
            offer = next(part for part in found["parts"] if part["orderable"])
            items.append({"part_id": offer["part_id"], "quantity": quantity})
        args = {"vendor": vendor, "po_number": po, "notes": notes, "items": items}
        result = structured(await client.call_tool("place_order", args))
    assert result["status"] == "awaiting_approval", result
    [url] = [url for url in links.urls if f"/approvals/{result['approval_id']}?k=" in url]
    assert url.split("?k=")[1] not in str(result)  # nothing the model receives can approve
    return url


def open_page(browser: WebDriver, url: str) -> None:
    browser.get(url)
    WebDriverWait(browser, WAIT).until(expected_conditions.presence_of_element_located((By.TAG_NAME, "h1")))


def press(browser: WebDriver, decision: str) -> None:
    """Press Approve or Decline and wait for the answer page (the old page goes stale)."""
    # A mark on the old document: the answer page is a new document without it. (Waiting for the button
    # to go stale races the navigation: chromedriver may then fail with "does not belong to the document".)
    browser.execute_script("window.partsMcpOldPage = true")
    browser.find_element(By.CSS_SELECTOR, f"button[value={decision}]").click()
    WebDriverWait(browser, WAIT, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script("return document.readyState === 'complete' && !window.partsMcpOldPage")
    )
    WebDriverWait(browser, WAIT).until(expected_conditions.presence_of_element_located((By.TAG_NAME, "h1")))


def heading(browser: WebDriver) -> str:
    return browser.find_element(By.TAG_NAME, "h1").text


def form_fields(browser: WebDriver) -> dict[str, str]:
    inputs: list[WebElement] = browser.find_elements(By.CSS_SELECTOR, "form input[type=hidden]")
    return {field.get_attribute("name") or "": field.get_attribute("value") or "" for field in inputs}


def screenshot(browser: WebDriver, to: Path) -> None:
    """The whole page, beyond the window; the README's copy is refreshed with UPDATE_SNAPSHOTS=1."""
    size = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    clip = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    image = base64.b64decode(shot["data"])
    assert image.startswith(b"\x89PNG") and len(image) > 10_000  # a rendered page, not a blank
    to.write_bytes(image)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(image)


def main_text(browser: WebDriver) -> str:
    return browser.find_element(By.TAG_NAME, "main").text


def post(url: str, fields: dict[str, str], decision: str = "approve", **headers: str) -> httpx2.Response:
    """A decision sent by something other than the page's own form (a script, a replay)."""
    return httpx2.post(url.split("?")[0], data={**fields, "decision": decision}, headers=headers)


async def test_approving_in_the_browser_places_exactly_one_order(tmp_path: Path, browser: WebDriver) -> None:
    with approval_server(tmp_path) as (world, base, links):
        url = await request_approval(base, links, "PO-PAGE-1")
        open_page(browser, url)
        shown = main_text(browser)
        total = browser.find_element(By.CSS_SELECTOR, "tfoot td.num").text
        for expected in ("SANDBOX", "Skynet Parts (skynet)", "PO-PAGE-1", "MS21042L3", "AN960C10", "Deliver to dock 4"):
            assert expected in shown
        assert f"Approve and order for {total}" in shown
        screenshot(browser, tmp_path / "approval-page.png")
        assert world.skynet_orders == []  # looking decides nothing
        press(browser, "approve")
        assert heading(browser) == "Order placed"
        [order] = world.skynet_orders
        billed = f"{order['total']['amount']} {order['total']['currency']}"
        assert order["order_id"] in main_text(browser) and billed in main_text(browser)


async def test_declining_orders_nothing(tmp_path: Path, browser: WebDriver) -> None:
    with approval_server(tmp_path) as (world, base, links):
        open_page(browser, await request_approval(base, links, "PO-PAGE-2"))
        press(browser, "decline")
        assert heading(browser) == "Declined: nothing was ordered"
        assert world.skynet_orders == []


async def test_an_expired_request_orders_nothing(tmp_path: Path, browser: WebDriver) -> None:
    with approval_server(tmp_path) as (world, base, links):
        url = await request_approval(base, links, "PO-PAGE-3")
        open_page(browser, url)
        world.clock.advance(timedelta(seconds=world.settings.guard.approval_ttl_seconds + 1))
        press(browser, "approve")
        assert heading(browser) == "This approval request has expired"
        assert httpx2.get(url).status_code == 410
        assert world.skynet_orders == []


async def test_a_replayed_decision_orders_nothing_extra(tmp_path: Path, browser: WebDriver) -> None:
    with approval_server(tmp_path) as (world, base, links):
        url = await request_approval(base, links, "PO-PAGE-4")
        open_page(browser, url)
        fields = form_fields(browser)
        press(browser, "approve")
        assert heading(browser) == "Order placed"
        browser.back()  # Chrome may show the page again from its back/forward cache, form and all
        WebDriverWait(browser, WAIT, ignored_exceptions=(WebDriverException,)).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, "button[value=approve]")
        )
        press(browser, "approve")
        assert heading(browser) == "Already decided"
        replayed = post(url, fields)  # the same form, sent again
        assert replayed.status_code == 409, replayed.text
        assert httpx2.get(url).status_code == 409
        assert len(world.skynet_orders) == 1


async def test_a_second_approval_of_the_same_request_orders_nothing_extra(tmp_path: Path, browser: WebDriver) -> None:
    with approval_server(tmp_path) as (world, base, links):
        url = await request_approval(base, links, "PO-PAGE-5")
        first = browser.current_window_handle
        open_page(browser, url)
        browser.switch_to.new_window("tab")
        open_page(browser, url)  # the same link open twice, e.g. by two approvers
        press(browser, "approve")
        assert heading(browser) == "Order placed"
        browser.close()
        browser.switch_to.window(first)
        press(browser, "approve")
        assert heading(browser) == "Already decided"
        assert "approved" in main_text(browser)
        assert len(world.skynet_orders) == 1


def auto_submit(action: str, fields: dict[str, str]) -> Starlette:
    """Another site's page (another port of 127.0.0.1) that posts a decision to the approval URL on load."""
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    page = (
        f'<!doctype html><form method="post" action="{action}">{inputs}'
        '<input type="hidden" name="decision" value="approve"></form>'
        "<script>document.forms[0].submit()</script>"
    )

    async def evil(_: Request) -> HTMLResponse:
        return HTMLResponse(page)

    return Starlette(routes=[Route("/", evil)])


async def test_cross_site_posts_are_refused_and_change_nothing(tmp_path: Path, browser: WebDriver) -> None:
    with approval_server(tmp_path) as (world, base, links):
        url = await request_approval(base, links, "PO-PAGE-6")
        open_page(browser, url)
        fields = form_fields(browser)  # the strongest attacker: knows the link and every field of the form
        with serve(auto_submit(url.split("?")[0], fields)) as evil:
            browser.get(evil)
            WebDriverWait(browser, WAIT, ignored_exceptions=(WebDriverException,)).until(
                lambda b: (
                    b.current_url.startswith(url.split("/approvals/")[0])
                    and b.execute_script("return document.readyState") == "complete"
                    and b.find_elements(By.TAG_NAME, "h1")
                )
            )
            assert heading(browser) == "Refused"
            assert "another site" in main_text(browser)
        assert post(url, fields, Origin="http://evil.example").status_code == 403
        assert post(url, fields, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert post(url, {**fields, "csrf": ""}).status_code == 403  # not from a page this server rendered
        assert world.skynet_orders == []
        open_page(browser, url)  # still awaiting: the refusals changed nothing
        press(browser, "approve")
        assert heading(browser) == "Order placed"
        assert len(world.skynet_orders) == 1


async def test_a_price_change_after_the_page_was_opened_asks_again(tmp_path: Path, browser: WebDriver) -> None:
    with approval_server(tmp_path) as (world, base, links):
        url = await request_approval(base, links, "PO-PAGE-7", {"MS21042L3": 2})
        open_page(browser, url)
        old_form = form_fields(browser)
        world.sandbox.skynet.set_price("MS21042L3", "9.00")
        press(browser, "approve")
        assert world.skynet_orders == []
        assert heading(browser).startswith("Approve purchase order PO-PAGE-7")  # a new request, at the new price
        assert browser.current_url != url
        new_total = browser.find_element(By.CSS_SELECTOR, "tfoot td.num").text
        assert post(url, old_form).status_code in (404, 409)  # the old page's approval is spent
        assert world.skynet_orders == []
        press(browser, "approve")
        assert heading(browser) == "Order placed"
        assert new_total == "18.00 USD"  # 2 at the new list price: what the person approved
        assert len(world.skynet_orders) == 1


async def test_vendor_text_is_shown_as_the_vendors_and_never_as_markup(tmp_path: Path, browser: WebDriver) -> None:
    with approval_server(tmp_path) as (world, base, links):
        world.sandbox.factoryai.faults.arm(HOSTILE_TEXT, 10_000)
        notes = '<a href="https://evil.example">Approved already</a> \u202eesrever'
        open_page(browser, await request_approval(base, links, "PO-PAGE-8", {"SKF-6204": 1}, "factoryai", notes))
        assert browser.find_elements(By.CSS_SELECTOR, "script, img, a, iframe, link, [onerror]") == []
        assert "\u202e" not in browser.page_source and "\x1b" not in browser.page_source
        name = browser.find_element(By.CSS_SELECTOR, "tbody td bdi").text
        assert "< script>alert(1)" in name and "https://evil.example/pixel.png" in name  # text, not markup
        assert "names as the vendor gives them" in browser.find_element(By.TAG_NAME, "caption").text
        assistant = browser.find_elements(By.CSS_SELECTOR, "section.theirs")[-1].text
        assert "Written by the AI assistant" in assistant and "< a href" in assistant


async def test_the_link_secret_never_reaches_the_access_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    access = logging.getLogger("uvicorn.access")
    with approval_server(tmp_path) as (_, base, links):
        delivered = await request_approval(base, links, "PO-PAGE-9")
        url = base + "/approvals/" + delivered.split("/approvals/")[1]  # the page beside /mcp, as over HTTP
        secret = url.split("?k=")[1]
        access.addHandler(caplog.handler)
        try:
            with caplog.at_level(logging.INFO, logger="uvicorn.access"):
                page = httpx2.get(url)
                fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
                decided = post(url, fields, decision="decline")
        finally:
            access.removeHandler(caplog.handler)
    assert page.status_code == 200 and decided.status_code == 200, decided.text
    logged = [record.getMessage() for record in caplog.records if record.name == "uvicorn.access"]
    assert any("/approvals/" in line for line in logged), logged
    assert not any(secret in line for line in logged), logged
    headers = page.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert (headers["x-frame-options"], headers["referrer-policy"]) == ("DENY", "no-referrer")
    assert headers["cache-control"] == "no-store"


async def test_the_page_says_so_before_the_server_has_started() -> None:
    with serve(page_app(lambda: None)) as base:
        answer = httpx2.get(f"{base}/approvals/0f7c2d1e-0000-4000-8000-000000000000?k=anything")
    assert answer.status_code == 503
    assert "still starting" in answer.text
