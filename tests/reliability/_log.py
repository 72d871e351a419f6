"""Reading the event log of a run, page by page, from one replica."""

from __future__ import annotations

from collections.abc import Sequence

from msgbridge.v1 import gateway_pb2

from ._cluster import INBOUND_TYPES, Cluster

__all__ = ["read_events"]


async def read_events(
    cluster: Cluster,
    replica: int = 0,
    types: Sequence[gateway_pb2.Event.Type.ValueType] = INBOUND_TYPES,
) -> list[gateway_pb2.Event]:
    """Every event of ``types`` in the log, in cursor order."""
    stub = cluster.stub(cluster.replicas[replica])
    events: list[gateway_pb2.Event] = []
    after = 0
    while True:
        page = await stub.ListEvents(
            gateway_pb2.ListEventsRequest(after_cursor=after, page_size=1000, types=types),
            timeout=30,
        )
        if not page.events:
            return events
        events.extend(page.events)
        after = page.events[-1].cursor
