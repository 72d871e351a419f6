"""Work that holds the interpreter for long, run beside the event loop rather than on it.

Parsing and matching a large webhook body, or loading a large definition, is pure Python: on the
event loop it would hold every other call for its whole length (hundreds of milliseconds for the
largest inputs the limits allow). :func:`off_loop` runs it on one worker thread instead. One,
because the work holds the GIL: a second thread would add no speed, only keep the loop waiting
for the GIL longer (measured: an unrelated gRPC call took up to 0.2 s with one worker while
eight hostile bodies were read, 0.76 s with two), and it bounds the memory that inputs being
worked on take at once. The interpreter hands the GIL back to the loop every switch interval
(5 ms), so the loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["off_loop"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_WORKER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cpu")


async def off_loop(function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``function(*args, **kwargs)``, run on the worker thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_WORKER, lambda: function(*args, **kwargs))
