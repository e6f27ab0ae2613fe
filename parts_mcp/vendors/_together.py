"""Vendor calls made together: a look-up waits only for the calls that depend on one another.

Each client caps its own requests in flight (`anyio.CapacityLimiter` around each request, never
around a task that waits for other requests, so nested fan-outs cannot deadlock); `each` runs one
call per key at once, and `Once` lets several queries share one call for the same key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from parts_mcp.vendors.base import VendorError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


async def each(keys: Sequence[K], call: Callable[[K], Awaitable[V]]) -> dict[K, V]:
    """`call` for every key at once, answers by key in the order of `keys`.

    The first VendorError is raised as itself (not inside an ExceptionGroup), and the calls still
    running are cancelled: one failure fails the whole look-up at that vendor.
    """
    results: dict[K, V] = {}
    errors: list[VendorError] = []

    async def one(key: K, group: TaskGroup) -> None:
        try:
            results[key] = await call(key)
        except VendorError as exc:
            errors.append(exc)
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for key in dict.fromkeys(keys):
            group.start_soon(one, key, group)
    if errors:
        raise errors[0]
    return {key: results[key] for key in dict.fromkeys(keys) if key in results}


class Once(Generic[K, V]):
    """One call per key however many callers want it: the callers after the first wait for its answer."""

    def __init__(self, call: Callable[[K], Awaitable[V]]) -> None:
        self._call = call
        self._done: dict[K, anyio.Event] = {}
        self._answers: dict[K, V] = {}
        self._errors: dict[K, VendorError] = {}

    async def __call__(self, key: K) -> V:
        done = self._done.get(key)
        if done is None:
            done = self._done[key] = anyio.Event()
            try:
                self._answers[key] = await self._call(key)
            except VendorError as exc:
                self._errors[key] = exc
                raise
            finally:
                done.set()
        await done.wait()
        if key in self._errors:
            raise self._errors[key]
        if key not in self._answers:
            # The first caller was cancelled before it had an answer: this one asks itself.
            if self._done.get(key) is done:
                del self._done[key]
            return await self(key)
        return self._answers[key]
