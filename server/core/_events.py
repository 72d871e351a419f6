"""The event log's wake-up signal, and reading the log for ``StreamEvents``: every event after a
cursor (:func:`follow_events`), or a durable consumer's unacknowledged events, leased to one
subscriber (:func:`follow_consumer`).

The table is the truth; the hub is only a hint that something new may be there. Readers always
re-read the store after a wake-up, and also every few seconds without one, so a lost wake-up
(another replica's notification that never arrived) only delays an event, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from datetime import UTC, datetime

from ..store import EventFilter, EventRecord, Store

__all__ = ["EventHub", "follow_consumer", "follow_events"]

# The longest a reader waits for a wake-up before reading again (a lost notification from another
# replica then delays an event by this much at most).
_IDLE_RECHECK_S = 2.0


class EventHub:
    """Wakes every waiting reader when events were appended (in this process or, through the
    store's notifications, in another replica)."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._closed = False

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        self._closed = True
        self.notify()

    @property
    def closed(self) -> bool:
        return self._closed

    def mark(self) -> asyncio.Event:
        """Take before reading the store; :meth:`wait` on it then misses no notification."""
        return self._changed

    async def wait(self, mark: asyncio.Event, at_most_s: float = _IDLE_RECHECK_S) -> None:
        """Return once a notification came after ``mark`` was taken, or after ``at_most_s``."""
        if self._closed:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(mark.wait(), at_most_s)


async def follow_events(
    store: Store,
    hub: EventHub,
    *,
    after: int,
    event_filter: EventFilter,
    batch: int | Callable[[], int],
    follow: bool = True,
) -> AsyncGenerator[tuple[EventRecord, ...], None]:
    """Batches of events after cursor ``after``, in cursor order, with no gap.

    ``batch`` is the most events a read takes, or a function asked before each read (so that a
    reader can take fewer once the events are large).

    The position advances past events the filter leaves out too: the newest cursor is read
    *before* the events, so every event up to it was committed when the read ran (the store
    hands out cursors in commit order).
    """
    cursor = after
    # A filter of types alone — the default one names five of the nine — is applied here to the
    # events read in order: the position is then the last event read, with no second query per
    # wake-up; the events it leaves out cost their decoding, as they do an unfiltered reader.
    by_type = event_filter.types and replace(event_filter, types=frozenset()) == EventFilter()
    in_store = EventFilter() if by_type else event_filter
    while not hub.closed:
        mark = hub.mark()
        # Without a filter in the store every event is returned, so the position is the last one
        # read; with one, the newest cursor (read first) also skips the events it leaves out.
        newest = await store.latest_cursor() if in_store != EventFilter() else 0
        limit = batch() if callable(batch) else batch
        read = await store.read_events(cursor, filter=in_store, limit=limit)
        if read:
            cursor = read[-1].cursor
            events = tuple(e for e in read if event_filter.matches(e)) if by_type else read
            if events:
                yield events
            if len(read) == limit:
                continue
        cursor = max(cursor, newest)
        if not follow:
            return
        await hub.wait(mark)


async def follow_consumer(
    store: Store,
    hub: EventHub,
    consumer: str,
    *,
    event_filter: EventFilter,
    batch: Callable[[], int],
    lease_s: float,
    start_after: int | None,
) -> AsyncGenerator[tuple[EventRecord, ...], None]:
    """Batches of the events ``consumer`` has not acknowledged, each leased to this subscriber
    for ``lease_s`` (another subscriber of the consumer gets other events meanwhile).

    ``start_after`` is where a consumer that has never acknowledged anything starts (None: from
    the newest event on). The leases still held are released when the generator is closed.
    """
    subscriber = uuid.uuid4().hex
    try:
        while not hub.closed:
            mark = hub.mark()
            events = await store.lease_events(
                consumer,
                subscriber=subscriber,
                filter=event_filter,
                limit=batch(),
                lease_s=lease_s,
                now=datetime.now(UTC),
                start_after=start_after,
            )
            if events:
                yield events
                continue
            await hub.wait(mark, at_most_s=min(_IDLE_RECHECK_S, lease_s / 2))
    finally:
        # Shielded: the call is usually being cancelled (the subscriber went away) when this runs.
        await asyncio.shield(store.release_leases(consumer, subscriber))
