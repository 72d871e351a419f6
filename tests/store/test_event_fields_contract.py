"""The Store contract for an event's extra fields (docs/format.md, "Built values, extra fields and
validation patterns"): kept with the event, read back as they were, and carried by a held
receipt until it is released — on both backends."""

from __future__ import annotations

import dataclasses

from test_inbound_contract import at, event, held, ingest_one, webhook

from server.store import Store

FIELDS = {"contact_name": "Åsa Lindqvist 👋", "segments": "2", "empty": ""}


async def test_extra_fields_round_trip_with_the_event(store: Store) -> None:
    stored = await ingest_one(store, fields=FIELDS)
    assert dict(stored.fields) == FIELDS
    (read,) = await store.read_events(stored.cursor - 1)
    assert read == stored
    assert dict(read.fields) == FIELDS
    assert read.metadata == {}  # the caller's send metadata is a different map


async def test_an_event_without_extra_fields_reads_back_with_none(store: Store) -> None:
    stored = await ingest_one(store)
    (read,) = await store.read_events(stored.cursor - 1)
    assert dict(read.fields) == {}


async def test_a_held_receipt_keeps_its_extra_fields_until_released(store: Store) -> None:
    receipt = held("P-fields", fields={"price": "0.0075", "price_unit": "USD"})
    await store.ingest(webhook(), [], [], [receipt])
    (released,) = await store.release_held(at(10_000))
    assert dict(released.event.fields) == {"price": "0.0075", "price_unit": "USD"}
    again = dataclasses.replace(released.event, request_id="req-released", dedupe_key=None)
    outcome = await store.ingest(webhook(), [again])
    (record,) = outcome.events
    (read,) = await store.read_events(record.cursor - 1)
    assert dict(read.fields) == {"price": "0.0075", "price_unit": "USD"}


async def test_fields_do_not_change_the_event_order_or_the_other_fields(store: Store) -> None:
    request = webhook()
    events = [event(request, fields={"n": str(i)}) for i in range(3)]
    outcome = await store.ingest(request, events)
    read = await store.read_events(outcome.events[0].cursor - 1)
    assert [r.fields["n"] for r in read] == ["0", "1", "2"]
    assert [r.text for r in read] == [e.text for e in events]
