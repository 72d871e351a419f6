"""How late the event loop runs a timer: a busy loop (docs/media.md, "Inbound files").

The media fetcher is background work in the process that answers webhooks: while the loop runs
its timers late — it has more ready work than it gets through at once — the fetcher starts fewer
fetches, so that keeping files never takes the loop from the 2xx path (issue 17: ingest with
media fetching stays within 10% of ingest without).
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["LoopLag"]

_TICK_S: Final = 0.05
#: A timer this late means the loop is busy: an idle loop runs it within a millisecond or so
#: (epoll's timeout is in whole milliseconds).
_LATE_S: Final = 0.003
#: The loop counts as busy this long after a late timer.
_BUSY_FOR_S: Final = 1.0


class LoopLag:
    """A timer every 50 ms on the running loop; :attr:`busy` while one ran late in the last
    second."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._busy_until = 0.0

    def start(self) -> None:
        if self._handle is None:
            self._loop = asyncio.get_running_loop()
            self._schedule(self._loop.time())

    def stop(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    @property
    def busy(self) -> bool:
        return self._loop is not None and self._loop.time() < self._busy_until

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + _TICK_S
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if now - self._due > _LATE_S:
            self._busy_until = now + _BUSY_FOR_S
        self._schedule(now)
