"""What every vendor client is and shares: the Protocol, capabilities, errors and one HTTP helper.

Errors (mapped from HTTP in exactly one function per vendor; turned into tool errors only at the
tool boundary)::

    VendorError(vendor, code, message, status, retryable)
    ├── VendorAuthError          credentials missing, wrong or revoked (never retried)
    ├── VendorNotFound           the id is unknown to the vendor
    ├── VendorInvalidRequest     the vendor refused an input; `field` names it
    ├── VendorConflict           a state that forbids the change
    │   ├── VendorKeyConflict    the idempotency key is taken: an order under it may exist
    │   └── VendorOutOfStock     `items` lists what is short
    ├── VendorRateLimited        429; `retry_after` seconds when the vendor said
    ├── VendorUnavailable        5xx; `not_processed` when the vendor guarantees nothing was written;
    │                            also our own "circuit open" (nothing sent, `retry_after` = the cool-down left)
    ├── VendorBadResponse        a 2xx we cannot read (HTML, missing ids, too large)
    ├── VendorTimeout            no answer within the deadline: a write may have been committed
    └── VendorConnectionError    the connection failed; `sent` says whether the request left us
    NotSupported                 the vendor's API cannot do this at all (a capability, not a fault)
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from parts_mcp import retries
from parts_mcp.domain import LookupResult, Order, OrderItem, OrderStatus, OrderSummary, Part, Preview
from parts_mcp.redact import SecretFinder, finder
from parts_mcp.telemetry import VendorCall, vendor_call
from parts_mcp.untrusted import clean_code, clean_data, safe_id
from parts_mcp.untrusted import clean_text as clean_text  # vendor clients import it from here
from parts_mcp.vendors._circuit import Outcome, VendorHealth
from parts_mcp.vendors._circuit import breaker_clock as breaker_clock  # tests set it; see _circuit

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- errors


MESSAGE_LIMIT = 1000


class VendorError(Exception):
    """A vendor call failed. `message` is ours or sanitized vendor text: safe to show the model.

    Everything a vendor may have put in it is cleaned here, whoever raises it and whenever the message
    is replaced: `message` (one plain line), `code` (a bare token), `order_id` (kept only when it is a
    safe id, never altered) and the subclasses' `field` and `items`.
    """

    retryable: bool = False
    default_code = "VENDOR_ERROR"  # when the vendor named none: a bare upper-case token, like ours

    def __init__(
        self,
        vendor: str,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        order_id: str | None = None,
    ) -> None:
        super().__init__()
        self.vendor = vendor
        self.message = message
        self.code = clean_code(code) or self.default_code
        self.status = status
        # The vendor's id for the order, when it named one before failing. An unsafe one is dropped: the
        # order is then found by PO, as when the vendor named none.
        self.order_id = safe_id(order_id) if order_id else None
        # Set by the retry loop when an *earlier* attempt of the same call may have been committed.
        self.earlier_attempt_may_have_committed = False
        # Set where the failure proves no order was sent by this call: pricing before any send, or the
        # vendor's clean refusal of a first send. Only then may the caller be told "Nothing was ordered".
        self.nothing_sent = False

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = clean_text(value, MESSAGE_LIMIT)
        self.args = (self._message,)  # str() and repr(), which logs print, show only the clean text

    @property
    def maybe_committed(self) -> bool:
        """True when a write may have reached the vendor and been committed despite this error."""
        return self.earlier_attempt_may_have_committed or self._this_attempt_may_have_committed()

    def _this_attempt_may_have_committed(self) -> bool:
        return False


class VendorAuthError(VendorError):
    default_code = "VENDOR_AUTH"
    pass


class VendorNotFound(VendorError):
    default_code = "NOT_FOUND"
    pass


class VendorInvalidRequest(VendorError):
    default_code = "VENDOR_REJECTED"

    def __init__(self, vendor: str, message: str, *, field: str | None = None, **kw: Any) -> None:
        super().__init__(vendor, message, **kw)
        self.field = clean_text(field, 120) if field else None


class VendorConflict(VendorError):
    default_code = "VENDOR_CONFLICT"
    pass


class VendorKeyConflict(VendorConflict):
    """The vendor already holds this idempotency key (with another body, or still in flight): an order
    under that key may exist, so this is never a clean refusal."""

    def _this_attempt_may_have_committed(self) -> bool:
        return True


class VendorOutOfStock(VendorConflict):
    def __init__(self, vendor: str, message: str, *, items: Sequence[Mapping[str, Any]] = (), **kw: Any) -> None:
        super().__init__(vendor, message, **kw)
        self.items: list[dict[str, Any]] = [clean_data(dict(item), 120) for item in items]


class VendorRateLimited(VendorError):
    default_code = "RATE_LIMITED"
    retryable = True

    def __init__(self, vendor: str, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(vendor, message, **kw)
        self.retry_after = retry_after


class VendorUnavailable(VendorError):
    default_code = "VENDOR_UNAVAILABLE"
    retryable = True

    def __init__(
        self, vendor: str, message: str, *, not_processed: bool = False, retry_after: float | None = None, **kw: Any
    ) -> None:
        super().__init__(vendor, message, **kw)
        self.not_processed = not_processed
        self.retry_after = retry_after  # seconds, when known (a vendor held back by its open circuit)

    def _this_attempt_may_have_committed(self) -> bool:
        return not self.not_processed


class VendorBadResponse(VendorError):
    default_code = "VENDOR_BAD_RESPONSE"

    def _this_attempt_may_have_committed(self) -> bool:
        return True


class UnsafeVendorId(VendorBadResponse):
    """The vendor answered with an id that cannot be shown as it is (raised by the domain models).

    Changing an id would make it name nothing, or another record, at the vendor; so the answer is
    refused instead, like any other answer that cannot be used.
    """

    def __init__(self, vendor: str, limit: int) -> None:
        super().__init__(
            vendor,
            f"{vendor} answered with an id this server cannot pass on as it is: it holds markup, control, "
            f"invisible or bidi characters, line breaks or doubled spaces, or is over {limit} characters. "
            "The answer was refused rather than altered; the vendor's support can fix the record.",
            code="UNSAFE_VENDOR_ID",
        )


class VendorTimeout(VendorError):
    default_code = "VENDOR_TIMEOUT"
    retryable = True

    def _this_attempt_may_have_committed(self) -> bool:
        return True


class VendorConnectionError(VendorError):
    default_code = "VENDOR_CONNECTION"
    retryable = True

    def __init__(self, vendor: str, message: str, *, sent: bool, **kw: Any) -> None:
        super().__init__(vendor, message, **kw)
        self.sent = sent

    def _this_attempt_may_have_committed(self) -> bool:
        return self.sent


class NotSupported(VendorError):
    default_code = "NOT_SUPPORTED"

    def __init__(self, vendor: str, message: str, *, capability: str) -> None:
        super().__init__(vendor, message, code="NOT_SUPPORTED")
        self.capability = capability


# --------------------------------------------------------------------------------------- the protocol


@dataclass(frozen=True)
class Capabilities:
    """What a vendor's API can do; what it cannot is answered with a typed "not supported"."""

    lookup: bool = False
    quote: bool = False  # a binding price before ordering (not just a list price)
    place: bool = False
    get: bool = False
    list: bool = False
    idempotency_key: bool = False  # the vendor itself deduplicates writes by a client key
    find_by_po: bool = False  # the vendor can be searched by our PO number (reconciliation)
    # The vendor replays a *failure* under the same idempotency key (PartsSource caches 5xx for 24 h):
    # after one, look the order up by PO and, if it is absent, move on to a new key.
    replays_failures: bool = False
    # part_ids are short-lived tokens (a new one per look-up): an order is identified by part number instead.
    ephemeral_part_ids: bool = False
    cancel: bool = False  # the API can cancel an order it just created (a client with it is also `Cancels`)


@dataclass(frozen=True)
class OrderRequest:
    """An order as the caller asked for it, validated; the content the confirmation is bound to."""

    vendor: str
    po_number: str
    items: tuple[OrderItem, ...]
    notes: str | None = None
    options: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class OrderQuery:
    """Filters for listing orders. Vendors apply what their API can; the service re-checks every filter."""

    statuses: frozenset[OrderStatus] | None = None  # any of these
    po_number: str | None = None
    created_after: datetime | None = None  # timezone-aware
    created_before: datetime | None = None

    @property
    def status(self) -> OrderStatus | None:
        """The one status asked for, which a vendor's API may filter by; None for none or several."""
        return next(iter(self.statuses)) if self.statuses and len(self.statuses) == 1 else None

    def matches(self, order: OrderSummary) -> bool:
        """Whether `order` passes every filter; an order without a date passes no date filter."""
        created = order.created_at
        return (
            (self.statuses is None or order.status in self.statuses)
            and (self.po_number is None or (order.po_number or "").casefold() == self.po_number.casefold())
            and (self.created_after is None or (created is not None and created >= self.created_after))
            and (self.created_before is None or (created is not None and created < self.created_before))
        )


@runtime_checkable
class VendorClient(Protocol):
    """One vendor account. Implementations are pure API clients: HTTP in, domain types out."""

    key: str  # the config section name, used by the tools as `vendor`
    kind: str
    display_name: str
    capabilities: Capabilities
    options_help: str  # what place_order's `options` accepts at this vendor ("" for none); shown by list_vendors
    # What a normalized status means at this vendor, where it says more than the generic meaning.
    status_help: Mapping[OrderStatus, str]

    @property
    def search_help(self) -> str:
        """How this vendor searches, in a sentence or two (list_vendors shows it): why a search came back
        empty and what to try instead. A property, so a client may add what it learns (Keyloop's brands)."""
        ...

    async def lookup(self, queries: Sequence[str]) -> LookupResult:
        """Find parts by part number or name; unknown queries land in `not_found`."""
        ...

    async def look_again(self, queries: Sequence[str]) -> LookupResult:
        """One more, bounded round for queries `lookup` did not find: names as the vendor's search can
        take them (singular, any word order), and the nearest part numbers it has as `suggestions`.

        Parts found here count as found; `not_found` is what is still missing.
        """
        ...

    async def preview(self, request: OrderRequest, parts: Mapping[str, Part]) -> Preview:
        """Price the request as the vendor would, without writing anything.

        `parts` holds the latest known offer for each requested part_id.

        Raises:
            VendorInvalidRequest: an item or option the vendor would refuse.
        """
        ...

    async def place_order(self, request: OrderRequest, preview: Preview, idempotency_key: str) -> Order:
        """Create the order. Retries inside are only those the vendor makes safe.

        Raises:
            VendorError: with `maybe_committed` telling whether the order may exist anyway.
        """
        ...

    async def get_order(self, order_id: str) -> Order:
        """The vendor's current view of one order.

        Raises:
            VendorNotFound: no such order (or no longer retained).
            NotSupported: the API cannot look orders up.
        """
        ...

    async def list_orders(self, query: OrderQuery, max_orders: int) -> list[OrderSummary]:
        """Up to `max_orders` orders matching `query`, paging through the vendor's list as needed.

        Raises:
            NotSupported: the API cannot list orders.
        """
        ...

    async def find_order_by_po(self, po_number: str) -> Order | None:
        """The order carrying this PO number, if the vendor can be searched (reconciliation)."""
        ...

    def map_status(self, vendor_status: str | None) -> OrderStatus: ...


@runtime_checkable
class Cancels(Protocol):
    """A client whose vendor can cancel an order (`Capabilities.cancel`)."""

    async def cancel_order(self, order_id: str) -> Order:
        """Cancel the order and return it as the vendor now has it.

        Raises:
            VendorError: the vendor refused (e.g. the order already went to the supplier).
        """
        ...


# ------------------------------------------------------------------------------------------ HTTP helper


class HttpPolicy(BaseModel):
    """Timeouts and retry budget for one vendor (every vendor section's HTTP keys). Every call is bounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0, le=120)
    # Capped so that any send, with the searches around it, ends well inside the ledger's intent lease.
    deadline: float = Field(default=60.0, gt=0, le=120, description="One logical call, all attempts and waits included")
    attempts: int = Field(default=3, ge=1, le=10)
    wait_initial: float = Field(default=0.25, ge=0)
    wait_max: float = Field(default=4.0, ge=0)
    wait_jitter: float = Field(default=0.5, ge=0)
    retry_after_cap: float = Field(default=20.0, ge=0)  # a vendor asking for longer gets a rate-limited error
    max_response_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # A vendor failing on its side is left alone for a while rather than hammered (see _circuit).
    circuit_failures: int = Field(
        default=5, ge=1, le=100, description="Server-side failures in a row that open the circuit"
    )
    circuit_cooldown: float = Field(default=30.0, gt=0, le=600, description="Seconds an open circuit sends nothing")
    retry_budget: float = Field(default=0.1, ge=0, le=1, description="Retries allowed per call, over time")

    def timeouts(self) -> httpx2.Timeout:
        return httpx2.Timeout(
            connect=self.connect_timeout, read=self.read_timeout, write=self.read_timeout, pool=self.connect_timeout
        )


class VendorSettingsBase(HttpPolicy):
    """The config keys every vendor section has: its kind, where it lives, and its HTTP budget (inherited)."""

    # Each vendor's subclass adds `kind: Literal[...]` (the discriminator) and its credentials.
    base_url: str

    @field_validator("base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        # Checked here, at start-up: a bad URL would otherwise fail each call, after its retries.
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an absolute http:// or https:// URL (https://host/path), not {value!r}")
        return value.strip()

    def http_policy(self) -> HttpPolicy:
        return HttpPolicy.model_validate(self.model_dump(include=set(HttpPolicy.model_fields)))

    def account_marks(self) -> frozenset[str]:
        """What identifies the vendor account this section reaches, besides its kind and base_url.

        Two sections of one kind at one base_url sharing any mark reach one account. By default the
        credentials; a vendor whose account is named by ids (a dealer's store) adds those.
        """
        return frozenset(
            f"{name}={value.get_secret_value()}"
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        )


ErrorMapper = Callable[[httpx2.Response, Any], VendorError]


class TokenSource(Protocol):
    """Bearer tokens that expire (OAuth2 client credentials); see `_oauth.ClientCredentials`."""

    @property
    def secrets(self) -> list[str]: ...

    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


class VendorHttp:
    """The one way vendor clients talk HTTP: bounded, retried where safe, errors typed, secrets redacted."""

    def __init__(
        self,
        vendor: str,
        client: httpx2.AsyncClient,
        base_url: str,
        *,
        headers: Mapping[str, str],
        map_error: ErrorMapper,
        policy: HttpPolicy | None = None,
        secrets: Sequence[str] = (),
        tokens: TokenSource | None = None,
    ) -> None:
        self.vendor = vendor
        self._client = client
        self._base = base_url.rstrip("/")
        self._headers = dict(headers)
        self._map_error = map_error
        self.policy = policy or HttpPolicy()
        self._secrets = [s for s in secrets if s]
        self._tokens = tokens
        p = self.policy
        # One per client, so per vendor section: what every call to this vendor has shown so far.
        self.health = VendorHealth(
            vendor,
            failures=p.circuit_failures,
            cooldown=p.circuit_cooldown,
            budget=p.retry_budget,
            burst=p.attempts - 1,
            clock=breaker_clock.get(),
        )

    def redact(self, text: str) -> str:
        """`text` with our keys and tokens blanked in every form a vendor may echo (`parts_mcp.redact`)."""
        return self._finder().redact(text)

    def _finder(self) -> SecretFinder:
        # Our own messages name no short word of ours: any secret is blanked there, a long one in any spelling.
        return finder([*self._secrets, *(self._tokens.secrets if self._tokens else [])], exact_min=1)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool,
    ) -> tuple[httpx2.Response, Any]:
        """Send one logical request and return the 2xx response with its parsed JSON body.

        `retry` says whether repeating the request is safe (reads, and writes the vendor deduplicates).

        Raises:
            VendorUnavailable: the vendor's circuit is open: nothing was sent (`nothing_sent`, `retry_after`).
            VendorError: the mapped failure of the last attempt.
        """
        with vendor_call(self.vendor, method, path) as call:  # a span, the latency, the circuit's state
            try:
                response, data = await self._request(call, method, path, json_body, params, headers, retry=retry)
            finally:
                call.circuit_open = not self.health.closed
            call.status = response.status_code
            return response, data

    async def _request(
        self,
        call: VendorCall,
        method: str,
        path: str,
        json_body: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        *,
        retry: bool,
    ) -> tuple[httpx2.Response, Any]:
        policy = self.policy
        attempts = policy.attempts if retry else 1
        probing = self._admit()

        committed_before = False
        last: VendorError | None = None

        def backoff(exc: Exception) -> bool | float:
            nonlocal committed_before
            if not isinstance(exc, VendorError) or not exc.retryable:
                return False
            committed_before = committed_before or exc.maybe_committed
            if isinstance(exc, VendorConnectionError) and exc.sent and not retry:
                return False
            if not self.health.may_retry():
                logger.info("not retrying %s %s at %s: circuit open or retry budget spent", method, path, self.vendor)
                return False
            if isinstance(exc, VendorRateLimited) and exc.retry_after is not None:
                return min(exc.retry_after, policy.retry_after_cap)
            logger.info("retrying %s %s at %s: %s", method, path, self.vendor, exc.code)
            return True

        try:
            with anyio.fail_after(policy.deadline):
                async for attempt in retries.retry_context(
                    on=backoff,
                    attempts=attempts,
                    timeout=None,  # the deadline above bounds the whole call, waits included
                    wait_initial=policy.wait_initial,
                    wait_max=policy.wait_max,
                    wait_jitter=policy.wait_jitter,
                ):
                    with attempt:
                        call.attempts = attempt.num
                        if attempt.num > 1 and not self.health.spend_retry():
                            # The circuit opened or the budget ran dry during the wait: send nothing more, and
                            # say what the vendor said last (`backoff` now refuses it, as nothing changed since).
                            assert last is not None
                            raise last
                        try:
                            probe = probing and attempt.num == 1
                            return await self._attempt(probe, method, path, json_body, params, headers)
                        except VendorError as exc:
                            # A 429 after a lost answer must not hide that the first attempt may have landed.
                            exc.earlier_attempt_may_have_committed = committed_before
                            last = exc
                            raise
        except TimeoutError as exc:
            error = VendorTimeout(self.vendor, f"{self.vendor} did not answer within {policy.deadline:g}s")
            raise error from exc
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def _admit(self) -> bool:
        """Whether this call's first attempt is the probe of a half-open circuit.

        Raises:
            VendorUnavailable: the circuit is open; nothing was sent, `retry_after` says for how long.
        """
        admission = self.health.admit(self.policy.deadline)
        if admission.wait is None:
            return admission.probe
        seconds = float(math.ceil(admission.wait))
        error = VendorUnavailable(
            self.vendor,
            f"{self.vendor} failed repeatedly, so this server is not calling it for the next {seconds:g}s; "
            "this request was not sent.",
            not_processed=True,
            retry_after=seconds,
        )
        error.nothing_sent = True
        raise error

    async def _attempt(
        self,
        probe: bool,
        method: str,
        path: str,
        json_body: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[httpx2.Response, Any]:
        """One attempt (`_once`), with what it showed about the vendor told to the vendor's breaker."""
        outcome = Outcome.NEUTRAL
        try:
            answer = await self._once(method, path, json_body, params, headers)
            outcome = Outcome.ANSWERED
            return answer
        except VendorError as exc:
            outcome = _health_outcome(exc)
            raise
        except BaseException:
            # Cancelled by a deadline that ran out means no answer in time; cancelled by the caller (or a
            # sibling's failure) says nothing about the vendor.
            if anyio.current_time() >= anyio.current_effective_deadline():
                outcome = Outcome.FAILED
            raise
        finally:
            self.health.record(outcome, probe=probe)

    async def _once(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[httpx2.Response, Any]:
        timeout = self.policy.timeouts()
        response, data, token = await self._send_with_token(method, path, json_body, params, headers, timeout)
        if response.status_code == 401 and token is not None and self._tokens is not None:
            # An expired or revoked token: a 401 means nothing was processed, so fetch a new one and try once more.
            self._tokens.invalidate(token)
            response, data, token = await self._send_with_token(method, path, json_body, params, headers, timeout)
        if response.is_success:
            if data is _UNREADABLE:
                raise VendorBadResponse(
                    self.vendor,
                    f"{self.vendor} answered {response.status_code} with a body that is not JSON",
                    status=response.status_code,
                )
            return response, data
        error = self._map_error(response, None if data is _UNREADABLE else data)
        error.message = self.redact(error.message)
        error.args = (error.message,)  # str() and repr() (which retry logs print) must not keep the raw text
        raise error

    async def _send_with_token(
        self,
        method: str,
        path: str,
        json_body: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        timeouts: httpx2.Timeout,
    ) -> tuple[httpx2.Response, Any, str | None]:
        token = await self._tokens.token() if self._tokens else None
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        request = self._client.build_request(
            method,
            self._base + path,
            json=json_body,
            params={k: v for k, v in (params or {}).items() if v is not None},
            headers={**self._headers, **(headers or {}), **auth},
            timeout=timeouts,
        )
        response, data = await self._exchange(request)
        return response, data, token

    async def _exchange(self, request: httpx2.Request) -> tuple[httpx2.Response, Any]:
        try:
            response = await self._client.send(request, stream=True)
            try:
                body = await self._read_capped(response)
            finally:
                await response.aclose()
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            raise VendorConnectionError(self.vendor, f"could not connect to {self.vendor}", sent=False) from exc
        except httpx2.TimeoutException as exc:
            raise VendorTimeout(self.vendor, f"{self.vendor} did not answer in time") from exc
        except httpx2.TransportError as exc:
            raise VendorConnectionError(
                self.vendor, f"the connection to {self.vendor} broke before its answer arrived", sent=True
            ) from exc

        # Before any client code sees it: a vendor that echoes our key or token cannot get it into a
        # cleaned, cut-to-length string that the last-line redactor would no longer recognise. Only an
        # answer that holds a long secret is touched (one search of the raw bytes): ids and PO numbers
        # in every honest answer stay exactly as sent.
        data = _parse_json(body)
        if data is not _UNREADABLE and self._echoes_secret(body):
            data = self._redacted(data)
        return response, data

    def _echoes_secret(self, body: bytes) -> bool:
        return self._finder().found_in_json(body.decode(json.detect_encoding(body), "replace"))

    def _redacted(self, data: Any, found: SecretFinder | None = None) -> Any:
        found = self._finder() if found is None else found
        if isinstance(data, str):
            return found.redact(data)
        if isinstance(data, dict):
            return {found.redact(str(k)): self._redacted(v, found) for k, v in data.items()}  # type: ignore[misc]
        if isinstance(data, list):
            return [self._redacted(item, found) for item in data]  # type: ignore[misc]
        return data

    async def _read_capped(self, response: httpx2.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.policy.max_response_bytes:
                raise VendorBadResponse(
                    self.vendor,
                    f"{self.vendor} sent more than {self.policy.max_response_bytes} bytes",
                    status=response.status_code,
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _health_outcome(exc: VendorError) -> Outcome:
    """What a failed attempt says about the vendor: down, up (it refused the request itself), or neither."""
    if isinstance(exc, VendorUnavailable | VendorTimeout | VendorConnectionError):
        return Outcome.FAILED
    if isinstance(exc, VendorRateLimited | VendorBadResponse):
        return Outcome.NEUTRAL  # a 429 says when to come back; an unreadable 2xx is no outage
    return Outcome.ANSWERED


def error_for_status(
    vendor: str, name: str, response: httpx2.Response, said: str, *, field: str | None = None, code: str | None = None
) -> VendorError:
    """The usual meaning of an HTTP status, for the errors a vendor's own codes and shapes do not settle.

    A 5xx here is not known to be unprocessed: for a write, the outcome is unknown.
    """
    status = response.status_code
    kw: dict[str, Any] = {"code": code or f"HTTP_{status}", "status": status}
    if status in (401, 403):
        return VendorAuthError(vendor, f"{name} refused access ({status}): {said}", **kw)
    if status == 404:
        return VendorNotFound(vendor, f"{name}: not found ({said}).", **kw)
    if status == 409:
        return VendorConflict(vendor, f"{name} refused: {said}", **kw)
    if status == 429:
        return VendorRateLimited(vendor, f"{name} is rate limiting.", retry_after=retry_after_seconds(response), **kw)
    if 400 <= status < 500:
        return VendorInvalidRequest(vendor, f"{name} refused the request: {said}", field=field, **kw)
    return VendorUnavailable(vendor, f"{name} failed ({status}).", **kw)


_UNREADABLE: Any = object()


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return _UNREADABLE


def retry_after_seconds(response: httpx2.Response) -> float | None:
    """Retry-After as seconds; an HTTP date or garbage gives None (the caller backs off on its own)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        from datetime import UTC, datetime

        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None
