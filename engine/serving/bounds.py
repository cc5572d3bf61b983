"""Bounds on the work one request may cause: a time limit and a cap on concurrent computations.

Both doors run each operation in a worker thread through `Bounds.run`. At most ``workers``
computations run at once (the rest wait their turn, and the wait counts against the time limit),
and a computation that outlives ``timeout`` seconds is answered with `Timeout`; its thread finishes
on its own in the background (Python threads cannot be killed), still holding its worker slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class Timeout(Exception):
    """An operation took longer than the service allows."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"the computation took longer than {seconds:g} s and was abandoned; "
                         "ask for fewer metrics, a shorter period range or fewer dimensions")


class Bounds:
    """A time limit per operation and a cap on computations running at once."""

    def __init__(self, timeout: float, workers: int = 2):
        self.timeout = timeout
        self._limiter: anyio.CapacityLimiter | None = None
        self._workers = workers

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Created lazily, inside the running event loop.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._workers)
        return self._limiter

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker thread, within the time limit."""
        try:
            with anyio.fail_after(self.timeout):
                return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self.limiter,
                                                      abandon_on_cancel=True)
        except TimeoutError:
            raise Timeout(self.timeout) from None
