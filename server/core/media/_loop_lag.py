"""How late the event loop runs a timer: a busy loop (docs/media.md, "Inbound files").

The media fetcher is background work in the process that answers webhooks: while the loop runs
most of its timers late — it has more ready work than it gets through at once, as under a burst
of webhooks — the fetcher only trickles, so that keeping files never takes the loop from the
2xx path (ingest with media fetching stays within 10% of ingest without). A timer late now and
then (one slow request, a moderate load) is not a busy loop: the fetcher keeps its pace.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

__all__ = ["LoopLag"]

_TICK_S: Final = 0.05
#: A timer this late means the loop is busy: an idle loop runs it within a millisecond or so
#: (epoll's timeout is in whole milliseconds).
_LATE_S: Final = 0.003
#: The ticks judged (about a second's worth) and how many of them must have been late.
_WINDOW: Final = 20
_LATE_FOR_BUSY: Final = 10


class LoopLag:
    """A timer every 50 ms on the running loop; :attr:`busy` while at least half of the last
    20 ran late."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._ticks: deque[bool] = deque(maxlen=_WINDOW)
        self._late = 0

    def start(self) -> None:
        if self._handle is None:
            self._loop = asyncio.get_running_loop()
            self._schedule(self._loop.time())

    def stop(self) -> None:
        handle, self._handle = self._handle, None
        self._ticks.clear()
        self._late = 0
        if handle is not None:
            handle.cancel()

    @property
    def busy(self) -> bool:
        return self._late >= _LATE_FOR_BUSY

    def _schedule(self, now: float) -> None:
        assert self._loop is not None
        self._due = now + _TICK_S
        self._handle = self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if len(self._ticks) == _WINDOW:
            self._late -= self._ticks[0]
        late = now - self._due > _LATE_S
        self._ticks.append(late)
        self._late += late
        self._schedule(now)
