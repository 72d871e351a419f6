"""Waiting for a condition that other processes make true (polled: they cannot tell us)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], *, within_s: float, every_s: float = 0.05
) -> bool:
    """Poll ``condition`` (sync or async) until it holds — True — or ``within_s`` passes — False."""
    deadline = time.monotonic() + within_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every_s)
