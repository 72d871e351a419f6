"""LoopLag (server/core/media/_loop_lag.py): a loop that runs its timers late is busy, which
makes the media fetcher start fewer fetches (docs/media.md, "Inbound files")."""

from __future__ import annotations

import asyncio
import time

from server.core.media._loop_lag import LoopLag


async def test_a_loop_held_by_a_blocking_call_is_busy() -> None:
    lag = LoopLag()
    assert not lag.busy  # not started
    lag.start()
    try:
        await asyncio.sleep(0.06)
        time.sleep(0.1)  # noqa: ASYNC251 (the point: the loop is held, the next tick is late)
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert lag.busy
    finally:
        lag.stop()
