"""LoopLag (server/core/media/_loop_lag.py): a loop that runs most of its timers late, or whose
thread is on a processor most of the time, is busy, which makes the media fetcher only trickle
(docs/media.md, "Inbound files"); a timer late now and then, or a thread with time to spare, is
not."""

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
    lag = LoopLag(thread_clock=_idle_clock)
    assert not lag.busy  # not started
    lag.start()
    try:
        await _held(1.2, idle_between_s=0)
        assert lag.busy
    finally:
        lag.stop()
    assert not lag.busy


async def test_a_timer_late_now_and_then_is_not_a_busy_loop() -> None:
    lag = LoopLag(thread_clock=_idle_clock)
    lag.start()
    try:
        await _held(1.2, idle_between_s=0.25)
        assert not lag.busy
    finally:
        lag.stop()


def _idle_clock() -> float:
    return 0.0  # a thread that is never on a processor: only the loop's lateness counts


class _Clock:
    """A thread's CPU clock that runs at ``share`` of the wall clock."""

    def __init__(self, share: float) -> None:
        self._share = share
        self._start = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self._start) * self._share


async def _ticks_with(share: float, ticks: int) -> LoopLag:
    lag = LoopLag(thread_clock=_Clock(share))
    lag.start()
    await asyncio.sleep(0.052 * ticks)
    return lag


async def test_a_loop_whose_thread_is_at_work_most_of_the_time_is_busy() -> None:
    lag = await _ticks_with(share=0.9, ticks=6)
    try:
        assert lag.thread_busy and lag.busy
    finally:
        lag.stop()


async def test_a_loop_whose_thread_has_time_to_spare_is_not() -> None:
    lag = await _ticks_with(share=0.3, ticks=6)
    try:
        assert not lag.thread_busy and not lag.busy
    finally:
        lag.stop()
