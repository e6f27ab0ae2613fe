"""How much a failing vendor is still asked: a circuit breaker and a retry budget, one per vendor section.

The breaker counts server-side failures (5xx, timeouts, broken connections) in a row. At
`circuit_failures` it opens: for `circuit_cooldown` seconds nothing is sent and calls fail at once.
Then one call goes through as a probe (others are held until its call's deadline); any answer from
the vendor (a 4xx refusal included) closes the circuit, a failure opens it again for twice as long
(at most `COOLDOWN_GROWTH` times the configured cool-down). A 429 counts neither way: it says
when to come back itself.

The budget is a token bucket (gRPC's retry throttling, the SRE book's per-client budget): each
call earns `retry_budget` of a retry, each retry spends a whole one, and the bucket holds at most
one call's retries (`attempts - 1`, also what it starts with). Over a failing window the attempts
stay within about (1 + retry_budget) times the calls. First attempts are never throttled, only
held back by an open circuit.

Everything here is synchronous: between two awaits no other call can interleave, so no lock.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# A failed probe doubles the cool-down, up to this many times the configured one.
COOLDOWN_GROWTH = 8

# The monotonic clock (seconds) a vendor's breaker reads, taken when its HTTP helper is built (in the
# server's lifespan). Nothing in the server sets it; a test sets it before `async with Client(server)`,
# whose tasks inherit it, so that a cool-down passes when the test moves its clock, not after a wait.
breaker_clock: ContextVar[Callable[[], float]] = ContextVar("breaker_clock", default=time.monotonic)


class Outcome(enum.Enum):
    ANSWERED = "answered"  # the vendor is up: a 2xx, or a refusal of the request itself
    FAILED = "failed"  # server-side: a 5xx, no answer in time, a broken connection
    NEUTRAL = "neutral"  # says nothing about health: a 429, an unreadable 2xx, a call cancelled by its caller


@dataclass(frozen=True)
class Admission:
    """Whether a call may send its first attempt: `wait` seconds to hold it back, else go (as the probe?)."""

    wait: float | None = None
    probe: bool = False


class VendorHealth:
    """One vendor's breaker and retry budget. See the module's docstring for the rules."""

    def __init__(
        self, vendor: str, *, failures: int, cooldown: float, budget: float, burst: int, clock: Callable[[], float]
    ) -> None:
        self.vendor = vendor
        self._threshold = failures
        self._base_cooldown = self._cooldown = cooldown
        self._ratio = budget
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._failures = 0  # server-side failures in a row
        self._open_until: float | None = None  # set while open, and while half-open once it has passed
        self._probe_until: float | None = None  # a probe is out until then (its call's deadline)

    @property
    def closed(self) -> bool:
        return self._open_until is None

    def admit(self, probe_deadline: float) -> Admission:
        """Let a call's first attempt go, or say how long it must wait; after the cool-down, one probe goes."""
        now = self._clock()
        probe = False
        if self._open_until is not None:
            if now < self._open_until:
                return Admission(wait=self._open_until - now)
            if self._probe_until is not None and now < self._probe_until:
                return Admission(wait=self._probe_until - now)
            self._probe_until = now + probe_deadline
            probe = True
        self._tokens = min(self._burst, self._tokens + self._ratio)
        return Admission(probe=probe)

    def may_retry(self) -> bool:
        return self.closed and self._tokens >= 1

    def spend_retry(self) -> bool:
        """Take one retry from the budget, if the circuit is closed and the budget holds one."""
        if not self.may_retry():
            return False
        self._tokens -= 1
        return True

    def record(self, outcome: Outcome, *, probe: bool) -> None:
        """What one attempt showed. Only the probe moves a circuit that is not closed."""
        if outcome is Outcome.ANSWERED:
            self._failures = 0
            if probe:
                logger.warning("%s answered again: its circuit is closed", self.vendor)
                self._open_until = self._probe_until = None
                self._cooldown = self._base_cooldown
        elif outcome is Outcome.FAILED:
            if probe:
                self._cooldown = min(self._cooldown * 2, self._base_cooldown * COOLDOWN_GROWTH)
                self._open(self._cooldown)
            elif self.closed:
                self._failures += 1
                if self._failures >= self._threshold:
                    self._open(self._cooldown)
        elif probe:
            self._probe_until = None  # the next call probes instead

    def _open(self, seconds: float) -> None:
        logger.warning("%s is failing on its side: nothing is sent to it for %gs", self.vendor, seconds)
        self._open_until = self._clock() + seconds
        self._probe_until = None
        self._failures = 0
