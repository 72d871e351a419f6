"""The event loop the service runs on: the ``event_loop`` setting (docs/configuration.md).

``uvloop`` (the default) is libuv's loop for asyncio, written in Cython: each callback, socket
read and timer costs less CPU than on asyncio's own loop, which is what the send and webhook
paths spend much of their time in (docs/operations.md, "Sizing"). Where uvloop is not
installed (a platform without a wheel) the service runs on asyncio's loop; ``asyncio`` chooses
that loop outright. The benchmarks run the product and its baselines on the same loop, so that a
ratio compares like with like.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

__all__ = ["EVENT_LOOPS", "loop_factory", "run_on", "running_loop_name"]

T = TypeVar("T")

#: The values the ``event_loop`` setting takes.
EVENT_LOOPS: Final = ("uvloop", "asyncio")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of loop ``name`` for :class:`asyncio.Runner`: uvloop's when ``name`` is
    ``uvloop`` and uvloop is installed; None (asyncio's own) otherwise."""
    if name != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_on(name: str, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on loop ``name`` (:func:`loop_factory`)."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the loop this is called on (the startup log line says it)."""
    return (
        "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
    )
