"""Whether the process has time to spare for background work (docs/media.md, "Inbound files").

The media fetcher is background work in the process that answers webhooks. It only trickles
while either of two things says that there is no time to spare:

- **the event loop runs most of its timers late**: it has more ready work than it gets through
  at once, as under a burst of webhooks (a timer late now and then — one slow request, a
  moderate load — is not a busy loop);
- **the event loop's thread is at work most of the time** (on a processor at least 70 % of the
  last half second, by its own CPU clock): its timers may still run on time, but the loop is
  near what one thread can do, and every cycle a fetch takes is one the answers to the
  provider wait for. Background work yields as a ``nice`` process would.

So keeping files never takes time from the 2xx path (ingest with media fetching stays within
10 % of ingest without), and with time to spare the fetcher keeps its full pace.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final

__all__ = ["LoopLag"]

_TICK_S: Final = 0.05
#: A timer this late means the loop is busy: an idle loop runs it within a millisecond or so
#: (epoll's timeout is in whole milliseconds).
_LATE_S: Final = 0.003
#: The ticks judged (about a second's worth) and how many of them must have been late.
_WINDOW: Final = 20
_LATE_FOR_BUSY: Final = 10
#: The loop's thread is busy on a processor this share of the wall time, over the last
#: :data:`_UTILISATION_WINDOW` ticks (about half a second).
_UTILISATION_FOR_BUSY: Final = 0.70
_UTILISATION_WINDOW: Final = 10


class LoopLag:
    """A timer every 50 ms on the running loop; :attr:`busy` while at least half of the last
    20 ran late, or while the loop's thread was on a processor 70 % of the last 10.
    ``thread_clock`` is that thread's CPU clock, seconds (``time.thread_time`` unless a test
    gives another)."""

    def __init__(self, *, thread_clock: Callable[[], float] = time.thread_time) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._ticks: deque[bool] = deque(maxlen=_WINDOW)
        self._late = 0
        self._thread_clock = thread_clock
        # (loop time, the thread's CPU time) at each tick
        self._clocks: deque[tuple[float, float]] = deque(maxlen=_UTILISATION_WINDOW + 1)

    def start(self) -> None:
        if self._handle is None:
            self._loop = asyncio.get_running_loop()
            self._schedule(self._loop.time())

    def stop(self) -> None:
        handle, self._handle = self._handle, None
        self._ticks.clear()
        self._late = 0
        self._clocks.clear()
        if handle is not None:
            handle.cancel()

    @property
    def busy(self) -> bool:
        return self._late >= _LATE_FOR_BUSY or self.thread_busy

    @property
    def thread_busy(self) -> bool:
        """Whether the loop's thread was on a processor 70 % of the ticks kept."""
        if len(self._clocks) < 2:
            return False
        (wall_then, cpu_then), (wall_now, cpu_now) = self._clocks[0], self._clocks[-1]
        wall = wall_now - wall_then
        return wall > 0 and (cpu_now - cpu_then) / wall >= _UTILISATION_FOR_BUSY

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
        self._clocks.append((now, self._thread_clock()))
        self._schedule(now)
