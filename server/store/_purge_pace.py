"""The pace of a retention purge (docs/operations.md, "Retention"): it deletes in chunks sized
to take a few milliseconds each (:class:`PurgeChunks`), and after each it rests three times as
long as the chunk took (:class:`PurgePace`), so that it has at most a quarter of what the store
(the SQLite writer thread; PostgreSQL's CPU and its log's syncs) gives the webhooks and sends
arriving meanwhile.

A purge runs in the background and its deadline is the next purge, an hour later by default: it
may take four times as long; the webhooks may not wait behind it. At half, the purge's chunks
and the webhooks' work wanted more than this 2-core machine's CPU: while 1,050,000 rows were
purged (``make bench-grown``, 4 runs of each share) the webhooks' p50 went from 1.0 ms to
2.6-3.4 ms on SQLite and their p99 was 9-34 ms (median 18); at a quarter, 1.9 ms and 10-18 ms
(median 11), the purge taking 9-10 s instead of 4-5 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["PURGE_SHARE", "PurgeChunks", "PurgePace", "purge_paced"]

#: The share of the time a purge spends deleting; the rest it rests.
PURGE_SHARE: Final = 0.25
#: The first chunk of a purge, before its rate is known (rows).
_FIRST_CHUNK: Final = 500


class PurgeChunks:
    """How many rows the next chunk of a purge deletes: as many as take about ``seconds`` at the
    rate the last chunk deleted them (rows differ in what they cost: width, indexes, the cache),
    at least one and at most ``largest``."""

    def __init__(self, largest: int, seconds: float) -> None:
        self._largest = largest
        self._seconds = seconds
        self.size = min(largest, _FIRST_CHUNK)

    def took(self, rows: int, seconds: float) -> None:
        """Size the next chunk from this one: ``rows`` deleted in ``seconds``."""
        if rows > 0 and seconds > 0:
            fitting = int(self._seconds * rows / seconds)
            self.size = max(1, min(self._largest, fitting))


class PurgePace:
    """Rests a purge after each chunk: at :data:`PURGE_SHARE`, three times as long as the chunk
    took."""

    def __init__(self, share: float = PURGE_SHARE) -> None:
        if not 0 < share <= 1:
            raise ValueError("a purge's share is in (0, 1]")
        self._rest_per_second = (1 - share) / share

    async def rest_after(self, started: float) -> None:
        """Rest after a chunk that started at ``started`` (``time.perf_counter()``)."""
        took = time.perf_counter() - started
        if took > 0 and self._rest_per_second > 0:
            await asyncio.sleep(took * self._rest_per_second)


#: One chunk of a purge, of at most the given number of rows: (rows deleted, seconds the store
#: spent on it, whether the purge is done).
PurgeStep = Callable[[int], Awaitable[tuple[int, float, bool]]]


async def purge_paced(step: PurgeStep, *, largest: int, seconds: float) -> int:
    """Run ``step`` chunk after chunk until it says it is done, each chunk sized to take about
    ``seconds`` (:class:`PurgeChunks`, at most ``largest`` rows) and followed by a rest
    (:class:`PurgePace`); the rows deleted."""
    chunks = PurgeChunks(largest, seconds)
    pace = PurgePace()
    total = 0
    while True:
        started = time.perf_counter()
        deleted, took, done = await step(chunks.size)
        chunks.took(deleted, took)
        total += deleted
        if done:
            return total
        await pace.rest_after(started)
