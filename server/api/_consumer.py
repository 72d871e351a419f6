"""Reading the event log for one subscriber of a durable consumer (``StreamEvents`` with
``consumer``): leased batches, released when the subscriber goes.

The counterpart of :func:`server.core.follow_events` for a consumer; it speaks no gRPC and
would sit next to it in :mod:`server.core` (it is here only because the core is another
engineer's today).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime

from ..core import EventHub
from ..store import EventFilter, EventRecord, Store

__all__ = ["follow_consumer"]

# The longest a subscriber waits for a wake-up before reading again (a lost notification from
# another replica then delays an event by this much at most).
_IDLE_RECHECK_S = 2.0


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
