"""The running event loop's clock, moved forward when a test says: a deadline then passes at the
point the test chooses — after the provider has the request, after a connection sat idle — and
not whenever a short real timeout happens to run out on a busy machine.

Every asyncio deadline (``asyncio.timeout``, ``wait_for``, ``call_at``, ``sleep``) is measured
on ``loop.time()``. Moving that clock forward makes each timer whose time has come on the moved
clock due at once, in order, on the loop's next turn; nothing else about the loop changes.
Timers set while the clock is ahead are that much later once the block restores the real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

__all__ = ["LoopClock", "loop_clock"]


class LoopClock:
    """``loop.time()`` plus the time the test has moved it forward by."""

    def __init__(self, real: Callable[[], float]) -> None:
        self._real = real
        self._ahead = 0.0

    def time(self) -> float:
        return self._real() + self._ahead

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward: the timers due by then fire on the next turn."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._ahead += seconds


@contextlib.contextmanager
def loop_clock() -> Iterator[LoopClock]:
    """Let the test move the running loop's clock while the block runs (its own clock after)."""
    loop = asyncio.get_running_loop()
    clock = LoopClock(loop.time)
    loop.time = clock.time  # type: ignore[method-assign]
    try:
        yield clock
    finally:
        del loop.time
