"""LoopLag (server/core/media/_loop_lag.py): a loop that runs most of its timers late is busy,
which makes the media fetcher only trickle (docs/media.md, "Inbound files"); a timer late now
and then is not."""

from __future__ import annotations

import asyncio
import time

from server.core.media._loop_lag import LoopLag


async def _held(seconds: float, *, idle_between_s: float) -> None:
    """For ``seconds``, hold the loop in blocks of 60 ms (a tick due in one runs late), with
    ``idle_between_s`` of free loop between blocks."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.06)  # noqa: ASYNC251 (the point: the loop is held, a tick is late)
        await asyncio.sleep(idle_between_s)


async def test_a_loop_held_most_of_the_time_is_busy() -> None:
    lag = LoopLag()
    assert not lag.busy  # not started
    lag.start()
    try:
        await _held(1.2, idle_between_s=0)
        assert lag.busy
    finally:
        lag.stop()
    assert not lag.busy


async def test_a_timer_late_now_and_then_is_not_a_busy_loop() -> None:
    lag = LoopLag()
    lag.start()
    try:
        await _held(1.2, idle_between_s=0.25)
        assert not lag.busy
    finally:
        lag.stop()
