"""The Store contract of the inbound path: webhook requests, the event log, dedupe, receipts
(sticky transitions, held receipts), durable consumers, retention — through the protocol only."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from server.store import (
    Conflict,
    EventFilter,
    EventRecord,
    HeldReceipt,
    InboundEventType,
    InstallationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    MessageTransition,
    NewEvent,
    NumberAssignment,
    RecordNotFound,
    Store,
    WebhookOutcome,
    WebhookRequestRecord,
)

if TYPE_CHECKING:
    from conftest import StoreBackend  # tests/store/conftest.py

T0 = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
_ids = itertools.count(1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def webhook(
    *, outcome: WebhookOutcome = WebhookOutcome.MATCHED, received: float = 0, **changes: object
) -> WebhookRequestRecord:
    record = WebhookRequestRecord(
        id=f"req-{next(_ids):04d}",
        received_at=at(received),
        integration_id="acme",
        installation_id="inst-1",
        method="POST",
        path="/webhooks/acme/…",
        query="a=1&a=2&b=%C3%A9",
        headers=(("Content-Type", "application/json"), ("X-Dup", "1"), ("X-Dup", "2")),
        body=b'{"id": "P1", "raw": "\xff\x00"}',
        content_type="application/json",
        outcome=outcome,
        reason="" if outcome is WebhookOutcome.MATCHED else "no model matched",
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def event(
    request: WebhookRequestRecord | None = None,
    *,
    key: str | None = None,
    type: str = InboundEventType.MESSAGE,
    received: float = 0,
    **changes: object,
) -> NewEvent:
    n = next(_ids)
    record = NewEvent(
        type=str(type),
        org_id="org-1",
        installation_id="inst-1",
        integration_id="acme",
        users=("101", "alice"),
        from_number="+15550000009",
        to_number="+15550000001",
        text=f"héllo {n} 👋",
        media_urls=("https://media.example/1.jpg", "https://media.example/2.png"),
        provider_message_id=f"P{n}",
        message_id="",
        status="received",
        error="",
        metadata={},
        received_at=at(received),
        request_id=request.id if request else "req-x",
        dedupe_key=key,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def receipt(
    provider_id: str, *, type: str = InboundEventType.MESSAGE_DELIVERED, **changes: object
) -> NewEvent:
    defaults: dict[str, object] = {
        "users": (),
        "text": "",
        "media_urls": (),
        "provider_message_id": provider_id,
        "status": "delivered",
        "key": f"inst-1|dlr|{type}|{provider_id}",
    }
    defaults.update(changes)
    return event(type=type, **defaults)  # type: ignore[arg-type]


def held(
    provider_id: str, *, held_at: float = 0, wait: float = 10, **changes: object
) -> HeldReceipt:
    return HeldReceipt(
        id=f"held-{next(_ids)}",
        integration_id="acme",
        provider_message_id=provider_id,
        event=receipt(provider_id, **changes),  # type: ignore[arg-type]
        held_at=at(held_at),
        release_at=at(held_at + wait),
    )


def sent_message(provider_id: str, *, state: MessageState = MessageState.SENT) -> MessageRecord:
    return MessageRecord(
        id=f"msg-{next(_ids)}",
        org_id="org-7",
        installation_id="inst-7",
        integration_id="acme",
        kind=MessageKind.SMS,
        from_number="+15550000001",
        to_number="+15550000002",
        text="hi",
        media_url=None,
        state=state,
        provider_message_id=provider_id,
        provider_status=202,
        attempts=1,
        error=None,
        metadata={"ticket": "42", "ünï": "✓"},
        idempotency_key=None,
        request_fingerprint=None,
        reply_json=None,
        created_at=T0,
        updated_at=T0,
    )


def fields(record: NewEvent) -> dict[str, object]:
    """An event's NewEvent fields, comparable between a NewEvent and an EventRecord."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(NewEvent)}


async def ingest_one(store: Store, **changes: object) -> EventRecord:
    request = webhook()
    outcome = await store.ingest(request, [event(request, **changes)])  # type: ignore[arg-type]
    (record,) = outcome.events
    return record


# ---------------------------------------------------------------------------------------------
# Ingest: requests, events, cursors


async def test_ingest_keeps_the_request_and_appends_its_events_in_order(store: Store) -> None:
    request = webhook()
    events = [event(request, key="k1"), event(request), event(request, type="mms", key="k2")]

    outcome = await store.ingest(request, events)

    assert outcome.duplicates == 0
    assert [fields(e) for e in outcome.events] == [fields(e) for e in events]
    cursors = [e.cursor for e in outcome.events]
    assert cursors == sorted(cursors) and len(set(cursors)) == 3 and cursors[0] >= 1
    assert await store.read_events(0) == outcome.events
    assert await store.get_webhook_request(request.id) == request
    assert await store.get_webhook_request("nope") is None
    assert await store.latest_cursor() == cursors[-1]


async def test_ingest_with_no_events_keeps_the_request(store: Store) -> None:
    request = webhook(outcome=WebhookOutcome.UNMATCHED, installation_id=None)
    outcome = await store.ingest(request, [])
    assert (outcome.events, outcome.duplicates) == ((), 0)
    assert await store.get_webhook_request(request.id) == request
    assert await store.read_events(0) == ()


async def test_ingest_is_atomic_a_failure_leaves_nothing(store: Store) -> None:
    message, _ = await store.claim_message(sent_message("P-atomic"))
    request = webhook()
    first = held("P-held")
    clash = dataclasses.replace(held("P-other"), id=first.id)  # the second insert fails
    events = [event(request, key="k-atomic"), event(request)]
    transition = MessageTransition(message_id=message.id, state=MessageState.DELIVERED)

    with pytest.raises(Conflict):
        await store.ingest(request, events, [transition], [first, clash])

    assert await store.get_webhook_request(request.id) is None
    assert await store.read_events(0) == ()
    assert await store.release_held(at(10_000)) == ()
    stored = await store.get_message(message.id)
    assert stored is not None and stored.state is MessageState.SENT
    # Nothing was claimed either: the same ingest, corrected, appends everything.
    outcome = await store.ingest(request, events, [transition], [first])
    assert (len(outcome.events), outcome.duplicates) == (2, 0)
    assert [r.id for r in await store.release_held(at(10_000))] == [first.id]


async def test_a_request_id_in_use_is_a_conflict_and_appends_nothing(store: Store) -> None:
    request = webhook()
    await store.ingest(request, [event(request)])
    with pytest.raises(Conflict):
        await store.ingest(request, [event(request, key="k-new")])
    assert len(await store.read_events(0)) == 1
    # The failed call did not take the key.
    again = webhook()
    assert len((await store.ingest(again, [event(again, key="k-new")])).events) == 1


async def test_dedupe_by_key_across_ingests_and_within_one_batch(store: Store) -> None:
    first = webhook()
    one = await store.ingest(first, [event(first, key="inst-1|m|message|P1")])
    assert (len(one.events), one.duplicates) == (1, 0)

    retry = webhook()
    batch = [
        event(retry, key="inst-1|m|message|P1"),  # the provider's retry: a duplicate
        event(retry, key="inst-1|m|message|P2"),
        event(retry, key="inst-1|m|message|P2"),  # twice in one batch: the second is one
        event(retry),  # no key: never a duplicate
        event(retry),
    ]
    two = await store.ingest(retry, batch)

    assert two.duplicates == 2
    assert [fields(e) for e in two.events] == [fields(batch[i]) for i in (1, 3, 4)]
    assert len(await store.read_events(0)) == 4
    assert await store.get_webhook_request(retry.id) == retry  # the retry is kept too


async def test_ingest_many_stores_each_request_and_appends_their_events_in_order(
    store: Store,
) -> None:
    first, second, third = webhook(), webhook(), webhook(outcome=WebhookOutcome.UNMATCHED)
    batch = [
        (first, [event(first, key="k-bulk"), event(first)]),
        (second, [event(second, key="k-bulk"), event(second)]),  # its keyed one: a duplicate
        (third, []),
    ]
    appended = await store.ingest_many(batch)

    assert appended == 3
    stored = await store.read_events(0)
    wanted = [batch[0][1][0], batch[0][1][1], batch[1][1][1]]
    assert [fields(e) for e in stored] == [fields(e) for e in wanted]
    for request in (first, second, third):
        assert await store.get_webhook_request(request.id) == request


async def test_ingest_many_is_one_transaction_a_conflict_leaves_nothing(store: Store) -> None:
    taken = webhook()
    await store.ingest(taken, [])
    fresh = webhook()
    with pytest.raises(Conflict):
        await store.ingest_many([(fresh, [event(fresh, key="k-rolled-back")]), (taken, [])])
    assert await store.get_webhook_request(fresh.id) is None
    assert await store.read_events(0) == ()
    again = webhook()  # the key was not taken by the call rolled back
    assert await store.ingest_many([(again, [event(again, key="k-rolled-back")])]) == 1


async def test_concurrent_ingests_of_one_key_append_it_once(store: Store) -> None:
    requests = [webhook() for _ in range(20)]
    outcomes = await asyncio.gather(*(store.ingest(r, [event(r, key="same")]) for r in requests))
    assert sum(len(o.events) for o in outcomes) == 1
    assert sum(o.duplicates for o in outcomes) == 19
    assert len(await store.read_events(0)) == 1


async def test_concurrent_ingests_get_distinct_increasing_cursors(store: Store) -> None:
    requests = [webhook() for _ in range(30)]
    outcomes = await asyncio.gather(*(store.ingest(r, [event(r), event(r)]) for r in requests))
    cursors = [e.cursor for o in outcomes for e in o.events]
    assert len(set(cursors)) == 60
    for o in outcomes:  # one call's events are consecutive in the log's order
        assert o.events[0].cursor < o.events[1].cursor
    stored = await store.read_events(0, limit=1000)
    assert [e.cursor for e in stored] == sorted(cursors)


async def test_cursors_are_never_reused_after_a_purge(store: Store) -> None:
    assert (await store.latest_cursor(), await store.earliest_cursor()) == (0, 0)
    first = [await ingest_one(store, received=s) for s in (0, 1, 2)]
    top = first[-1].cursor
    assert await store.earliest_cursor() == first[0].cursor - 1

    counts = await store.purge(
        events_before=at(100),
        requests_before=None,
        messages_before=None,
        dedupe_before=None,
    )
    assert counts["events"] == 3
    assert await store.read_events(0) == ()
    assert await store.latest_cursor() == top  # never decreases
    assert await store.earliest_cursor() == top  # nothing kept: reading after it gets the next

    later = await ingest_one(store, received=200)
    assert later.cursor > top
    assert await store.read_events(await store.earliest_cursor()) == (later,)
    assert await store.earliest_cursor() == later.cursor - 1


async def test_events_round_trip_every_field(store: Store) -> None:
    stored = await ingest_one(
        store,
        key="k|ü",
        message_id="msg-9",
        metadata={"ticket": "42", "ünï": "✓"},
        error="30003: unreachable",
        type=InboundEventType.MESSAGE_FAILED,
        users=(),
        media_urls=(),
    )
    (read,) = await store.read_events(stored.cursor - 1)
    assert read == stored
    assert read.metadata == {"ticket": "42", "ünï": "✓"}
    assert read.received_at == T0 and read.received_at.utcoffset() == timedelta(0)
    assert read.dedupe_key == "k|ü" and read.type == "messageFailed"


async def test_read_events_filters_limits_and_orders(store: Store) -> None:
    request = webhook()
    specs = [
        ("org-1", "acme", "message"),
        ("org-2", "acme", "mms"),
        ("org-1", "zeta", "messageDelivered"),
        ("org-1", "acme", "mms"),
        ("org-2", "zeta", "message"),
        ("org-1", "acme", "messageFailed"),
    ]
    events = [event(request, org_id=o, integration_id=i, type=t) for o, i, t in specs]
    stored = (await store.ingest(request, events)).events
    c = [e.cursor for e in stored]

    assert await store.read_events(0) == stored
    assert await store.read_events(c[2]) == stored[3:]
    assert await store.read_events(c[-1]) == ()
    assert await store.read_events(0, limit=2) == stored[:2]
    assert await store.read_events(c[1], limit=2) == stored[2:4]

    def picked(f: EventFilter) -> list[int]:
        return [e.cursor for e in stored if f.matches(e)]

    for f in (
        EventFilter(org_id="org-1"),
        EventFilter(integration_id="zeta"),
        EventFilter(types=frozenset({"mms", "messageFailed"})),
        EventFilter(org_id="org-1", integration_id="acme", types=frozenset({"mms", "message"})),
        EventFilter(org_id="org-3"),
        EventFilter(),
    ):
        assert [e.cursor for e in await store.read_events(0, filter=f)] == picked(f)
    org1 = EventFilter(org_id="org-1")
    assert [e.cursor for e in await store.read_events(c[0], filter=org1, limit=2)] == [
        c[2],
        c[3],
    ]
    assert [e.cursor for e in await store.read_events(0, filter=org1)] == [
        c[0],
        c[2],
        c[3],
        c[5],
    ]


# ---------------------------------------------------------------------------------------------
# Receipts: sticky transitions


async def _state_after(store: Store, *steps: tuple[MessageState, str | None]) -> MessageRecord:
    message, _ = await store.claim_message(sent_message(f"P-{next(_ids)}"))
    for state, error in steps:
        request = webhook()
        transition = MessageTransition(message_id=message.id, state=state, error=error)
        await store.ingest(request, [], [transition])
    stored = await store.get_message(message.id)
    assert stored is not None
    return stored


async def test_delivered_then_failed_stays_delivered(store: Store) -> None:
    stored = await _state_after(
        store, (MessageState.DELIVERED, None), (MessageState.FAILED, "30005: unknown")
    )
    assert (stored.state, stored.error) == (MessageState.DELIVERED, None)


async def test_failed_then_delivered_stays_failed(store: Store) -> None:
    stored = await _state_after(
        store, (MessageState.FAILED, "30003: unreachable"), (MessageState.DELIVERED, None)
    )
    assert (stored.state, stored.error) == (MessageState.FAILED, "30003: unreachable")


async def test_sent_never_overrides_delivered_or_failed(store: Store) -> None:
    delivered = await _state_after(store, (MessageState.DELIVERED, None), (MessageState.SENT, None))
    assert delivered.state is MessageState.DELIVERED
    failed = await _state_after(store, (MessageState.FAILED, "x"), (MessageState.SENT, None))
    assert (failed.state, failed.error) == (MessageState.FAILED, "x")


async def test_receipts_move_pending_and_sent_messages_forward(store: Store) -> None:
    message, _ = await store.claim_message(sent_message("P-p", state=MessageState.PENDING))
    request = webhook()
    before = datetime.now(UTC)
    await store.ingest(
        request,
        [receipt("P-p", type=InboundEventType.MESSAGE_SENT)],
        [MessageTransition(message_id=message.id, state=MessageState.SENT)],
    )
    stored = await store.get_message(message.id)
    assert stored is not None and stored.state is MessageState.SENT
    assert stored.updated_at >= before  # stamped when applied

    stored = await _state_after(store, (MessageState.FAILED, "30007: filtered"))
    assert (stored.state, stored.error) == (MessageState.FAILED, "30007: filtered")


async def test_a_transition_of_an_unknown_message_changes_nothing(store: Store) -> None:
    request = webhook()
    outcome = await store.ingest(
        request,
        [event(request)],
        [MessageTransition(message_id="no-such", state=MessageState.DELIVERED)],
    )
    assert len(outcome.events) == 1
    assert await store.get_message("no-such") is None


# ---------------------------------------------------------------------------------------------
# Receipts that overtook their send's reply


async def test_held_receipts_are_correlated_with_their_message(store: Store) -> None:
    request = webhook(installation_id=None, path="/webhooks/acme")
    delivered = held("P-early", installation_id="", org_id="", request_id=request.id)
    sent = held(
        "P-early",
        held_at=1,
        type=InboundEventType.MESSAGE_SENT,
        installation_id="",
        org_id="",
        key="k-sent",
    )
    other = held("P-other")
    outcome = await store.ingest(request, [], held=[delivered, sent, other])
    assert (outcome.events, outcome.duplicates) == ((), 0)
    message, _ = await store.claim_message(sent_message("P-early", state=MessageState.PENDING))

    correlated = await store.correlate_held("acme", "P-early", message)

    assert correlated.duplicates == 0
    assert [e.type for e in correlated.events] == ["messageDelivered", "messageSent"]
    for record, hold in zip(correlated.events, (delivered, sent), strict=True):
        expected = dataclasses.replace(
            hold.event,
            message_id=message.id,
            org_id="org-7",
            installation_id="inst-7",
            metadata={"ticket": "42", "ünï": "✓"},
        )
        assert fields(record) == fields(expected)
    assert await store.read_events(0) == correlated.events
    stored = await store.get_message(message.id)
    assert stored is not None and stored.state is MessageState.DELIVERED  # SENT came after: sticky

    again = await store.correlate_held("acme", "P-early", message)
    assert again.events == ()
    assert [r.id for r in await store.release_held(at(1_000))] == [other.id]


async def test_a_held_failure_receipt_records_its_error(store: Store) -> None:
    request = webhook()
    failure = held("P-f", type=InboundEventType.MESSAGE_FAILED, error="30003: unreachable")
    await store.ingest(request, [], held=[failure])
    message, _ = await store.claim_message(sent_message("P-f"))
    outcome = await store.correlate_held("acme", "P-f", message)
    assert [e.error for e in outcome.events] == ["30003: unreachable"]
    stored = await store.get_message(message.id)
    assert stored is not None
    assert (stored.state, stored.error) == (MessageState.FAILED, "30003: unreachable")


async def test_correlate_held_only_takes_its_integration_and_provider_id(store: Store) -> None:
    request = webhook()
    mine = held("P-1")
    other_integration = dataclasses.replace(held("P-1", key="zeta|P-1"), integration_id="zeta")
    await store.ingest(request, [], held=[mine, other_integration])
    message, _ = await store.claim_message(sent_message("P-1"))
    assert len((await store.correlate_held("acme", "P-1", message)).events) == 1
    assert (await store.correlate_held("acme", "P-none", message)).events == ()
    assert [r.id for r in await store.release_held(at(1_000))] == [other_integration.id]


async def test_a_retried_receipt_is_held_once_and_not_appended_later(store: Store) -> None:
    first = held("P-r")
    request = webhook()
    assert (await store.ingest(request, [], held=[first])).duplicates == 0
    retry = webhook()
    duplicate = dataclasses.replace(held("P-r"), event=first.event)
    assert (await store.ingest(retry, [], held=[duplicate])).duplicates == 1

    message, _ = await store.claim_message(sent_message("P-r"))
    assert len((await store.correlate_held("acme", "P-r", message)).events) == 1
    # The provider retries once more, now that the message is known: a duplicate.
    late = webhook()
    outcome = await store.ingest(late, [first.event])
    assert (outcome.events, outcome.duplicates) == ((), 1)
    assert len(await store.read_events(0)) == 1


async def test_release_held_returns_due_receipts_once_in_release_order(store: Store) -> None:
    request = webhook()
    late = held("P-3", held_at=5, wait=10)  # due at 15
    early = held("P-1", held_at=0, wait=10)  # due at 10
    middle = held("P-2", held_at=2, wait=10)  # due at 12
    await store.ingest(request, [], held=[late, early, middle])

    assert await store.release_held(at(9.999)) == ()
    released = await store.release_held(at(12))
    assert released == (early, middle)
    assert await store.release_held(at(12)) == ()
    assert await store.release_held(at(100)) == (late,)
    assert await store.release_held(at(100)) == ()


async def test_concurrent_releases_take_each_receipt_once(store: Store) -> None:
    request = webhook()
    receipts = [held(f"P-{n}", wait=n % 7) for n in range(40)]
    await store.ingest(request, [], held=receipts)

    batches = await asyncio.gather(*(store.release_held(at(100)) for _ in range(8)))

    taken = [r.id for batch in batches for r in batch]
    assert sorted(taken) == sorted(r.id for r in receipts)  # each once, none lost


# ---------------------------------------------------------------------------------------------
# Durable consumers


async def lease(
    store: Store,
    consumer: str,
    subscriber: str,
    *,
    now: float = 0,
    limit: int = 100,
    lease_s: float = 30,
    filter: EventFilter | None = None,
    start_after: int | None = None,
) -> list[int]:
    events = await store.lease_events(
        consumer,
        subscriber=subscriber,
        filter=filter or EventFilter(),
        limit=limit,
        lease_s=lease_s,
        now=at(now),
        start_after=start_after,
    )
    return [e.cursor for e in events]


async def append(store: Store, count: int, **changes: object) -> list[int]:
    request = webhook()
    batch = [event(request, **changes) for _ in range(count)]  # type: ignore[arg-type]
    return [e.cursor for e in (await store.ingest(request, batch)).events]


async def test_a_new_consumer_starts_from_now(store: Store) -> None:
    await append(store, 3)
    assert await lease(store, "core", "a") == []
    later = await append(store, 2)
    assert await lease(store, "core", "a") == later


async def test_a_new_consumer_may_start_after_a_cursor_and_a_known_one_resumes(
    store: Store,
) -> None:
    cursors = await append(store, 4)
    assert await lease(store, "core", "a", start_after=cursors[0]) == cursors[1:]
    # Known now: start_after is ignored, it resumes after what it was handed.
    assert await lease(store, "core", "a", start_after=0) == []
    assert await lease(store, "replay", "a", start_after=0) == cursors


async def test_subscribers_of_one_consumer_never_share_a_leased_event(store: Store) -> None:
    await lease(store, "core", "first")  # create the consumer, from now
    cursors = await append(store, 10)

    a = await lease(store, "core", "a", limit=4)
    b = await lease(store, "core", "b", limit=4)
    c = await lease(store, "core", "c", limit=4)

    assert a == cursors[:4] and b == cursors[4:8] and c == cursors[8:]
    assert await lease(store, "core", "d", now=29) == []  # all leased, none expired
    # Another consumer is independent: it gets every event.
    assert await lease(store, "audit", "x", start_after=0) == cursors


async def test_concurrent_leases_hand_each_event_to_one_subscriber(store: Store) -> None:
    await lease(store, "core", "first")
    cursors = await append(store, 60)
    got = await asyncio.gather(*(lease(store, "core", f"s{n}", limit=7) for n in range(12)))
    handed = [cursor for batch in got for cursor in batch]
    assert sorted(handed) == cursors


async def test_acknowledged_events_are_never_redelivered(store: Store) -> None:
    await lease(store, "core", "a")
    cursors = await append(store, 4)
    assert await lease(store, "core", "a", now=0, lease_s=10) == cursors

    assert await store.ack_events("core", cursors[:3]) == 3
    assert await store.ack_events("core", cursors[:3]) == 0  # already acknowledged
    assert await store.ack_events("other", cursors[3:]) == 0  # not that consumer's lease
    assert await store.ack_events("core", []) == 0

    # After expiry only the unacknowledged one goes out again, to whoever asks.
    assert await lease(store, "core", "b", now=10) == cursors[3:]
    assert await lease(store, "core", "c", now=15) == []
    assert await store.ack_events("core", cursors) == 1
    assert await lease(store, "core", "c", now=100) == []


async def test_expired_leases_are_redelivered_first_within_the_limit(store: Store) -> None:
    await lease(store, "core", "a")
    cursors = await append(store, 6)
    assert await lease(store, "core", "a", limit=3, lease_s=5) == cursors[:3]
    assert await lease(store, "core", "b", now=4.999, limit=1) == cursors[3:4]
    # At 5 the first three expired: they come first, then new events fill the limit.
    assert await lease(store, "core", "b", now=5, limit=4) == [*cursors[:3], cursors[4]]
    assert await lease(store, "core", "c", now=5, limit=4) == cursors[5:]


async def test_release_leases_hands_them_over_at_once(store: Store) -> None:
    await lease(store, "core", "a")
    cursors = await append(store, 5)
    assert await lease(store, "core", "a", limit=3, lease_s=3600) == cursors[:3]
    assert await lease(store, "core", "b", limit=1, lease_s=3600) == cursors[3:4]

    await store.release_leases("core", "a")

    assert await lease(store, "core", "c", now=1) == [*cursors[:3], cursors[4]]
    await store.release_leases("core", "nobody")  # nothing to release: fine
    assert await lease(store, "core", "d", now=2) == []


async def test_events_the_filter_leaves_out_do_not_block_the_consumer(store: Store) -> None:
    org2 = EventFilter(org_id="org-2")
    await lease(store, "core", "a", filter=org2)
    skipped = await append(store, 5, org_id="org-1")
    wanted = await append(store, 2, org_id="org-2")
    assert await lease(store, "core", "a", filter=org2, limit=1) == wanted[:1]
    assert await lease(store, "core", "a", filter=org2) == wanted[1:]
    assert await lease(store, "core", "a", filter=org2) == []
    # The skipped ones counted as handed out: without a filter they do not come back.
    more = await append(store, 1, org_id="org-1")
    assert await lease(store, "core", "a") == more
    # Once every lease expired, what comes back is what was handed out — never a skipped one.
    assert await lease(store, "core", "a", now=1000) == [*wanted, *more]
    assert not set(skipped) & set(wanted + more)


async def test_lease_limit_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        await lease(store, "core", "a", limit=0)


async def test_consumers_survive_reopening(store_backend: StoreBackend) -> None:
    first = store_backend.make()
    await first.start()
    try:
        await lease(first, "core", "a")
        cursors = await append(first, 3)
        assert await lease(first, "core", "a", limit=2, lease_s=10) == cursors[:2]
        await first.ack_events("core", cursors[:1])
    finally:
        await first.aclose()
    second = store_backend.make()
    await second.start()
    try:
        assert await lease(second, "core", "b", now=1) == cursors[2:]
        assert await lease(second, "core", "b", now=10) == cursors[1:2]
        assert [e.cursor for e in await second.read_events(0)] == cursors
        assert await second.latest_cursor() == cursors[-1]
    finally:
        await second.aclose()


# ---------------------------------------------------------------------------------------------
# Unmatched requests and replay


async def test_list_webhook_requests_filters_newest_first_with_paging(store: Store) -> None:
    matched = webhook(received=1)
    unmatched_old = webhook(outcome=WebhookOutcome.UNMATCHED, received=2)
    unroutable = webhook(outcome=WebhookOutcome.UNROUTABLE, received=3)
    other = webhook(outcome=WebhookOutcome.UNMATCHED, received=4, integration_id="zeta")
    refused = webhook(outcome=WebhookOutcome.UNAUTHENTICATED, received=5)
    unmatched_new = webhook(outcome=WebhookOutcome.UNMATCHED, received=6)
    for r in (matched, unmatched_old, unroutable, other, refused, unmatched_new):
        await store.ingest(r, [])
    kept = frozenset({WebhookOutcome.UNMATCHED, WebhookOutcome.UNROUTABLE})

    assert await store.list_webhook_requests(outcomes=kept) == (
        unmatched_new,
        other,
        unroutable,
        unmatched_old,
    )
    assert await store.list_webhook_requests(outcomes=kept, integration_id="acme") == (
        unmatched_new,
        unroutable,
        unmatched_old,
    )
    after_newest = (unmatched_new.received_at, unmatched_new.id)
    assert await store.list_webhook_requests(outcomes=kept, limit=2, after=after_newest) == (
        other,
        unroutable,
    )
    after_other = (other.received_at, other.id)
    assert [
        r.id for r in await store.list_webhook_requests(outcomes=frozenset(), after=after_other)
    ] == [r.id for r in (unroutable, unmatched_old, matched)]
    assert await store.list_webhook_requests(
        outcomes=frozenset({WebhookOutcome.UNAUTHENTICATED})
    ) == (refused,)
    everything = await store.list_webhook_requests(outcomes=frozenset())
    assert [r.id for r in everything] == [
        r.id for r in (unmatched_new, refused, other, unroutable, unmatched_old, matched)
    ]


async def test_mark_replayed_updates_the_request_and_appends_with_dedupe(store: Store) -> None:
    request = webhook(outcome=WebhookOutcome.UNMATCHED)
    kept = event(request, key="k-batch")  # the part of the batch that matched the first time
    await store.ingest(request, [kept])
    message, _ = await store.claim_message(sent_message("P-replay"))
    fixed = event(request, key="k-fixed")
    hold = held("P-late")

    outcome = await store.mark_replayed(
        request.id,
        outcome=WebhookOutcome.MATCHED,
        reason="",
        events=[kept, fixed],
        transitions=[MessageTransition(message_id=message.id, state=MessageState.DELIVERED)],
        held=[hold],
        replayed_at=at(60),
    )

    assert outcome.duplicates == 1
    assert [fields(e) for e in outcome.events] == [fields(fixed)]
    stored = await store.get_webhook_request(request.id)
    assert stored == dataclasses.replace(
        request, outcome=WebhookOutcome.MATCHED, reason="", replayed_at=at(60)
    )
    assert await store.list_webhook_requests(outcomes=frozenset({WebhookOutcome.UNMATCHED})) == ()
    updated = await store.get_message(message.id)
    assert updated is not None and updated.state is MessageState.DELIVERED
    assert await store.release_held(at(1_000)) == (hold,)

    before = datetime.now(UTC)
    again = await store.mark_replayed(
        request.id, outcome=WebhookOutcome.UNROUTABLE, reason="no owner", events=[fixed]
    )
    assert (again.events, again.duplicates) == ((), 1)
    stored = await store.get_webhook_request(request.id)
    assert stored is not None and stored.replayed_at is not None
    assert stored.replayed_at >= before and stored.reason == "no owner"


async def test_mark_replayed_of_an_unknown_request_is_not_found_and_appends_nothing(
    store: Store,
) -> None:
    with pytest.raises(RecordNotFound):
        await store.mark_replayed(
            "nope",
            outcome=WebhookOutcome.MATCHED,
            reason="",
            events=[event(key="k-lost")],
        )
    assert await store.read_events(0) == ()
    request = webhook()
    assert len((await store.ingest(request, [event(request, key="k-lost")])).events) == 1


# ---------------------------------------------------------------------------------------------
# Retention


async def test_purge_deletes_each_kind_by_its_own_time_and_counts(store: Store) -> None:
    # Requests and their events at t=0 (old) and t=100 (new), matched and not.
    old_matched, new_matched = webhook(received=0), webhook(received=100)
    old_unmatched = webhook(outcome=WebhookOutcome.UNROUTABLE, received=0)
    new_unmatched = webhook(outcome=WebhookOutcome.UNMATCHED, received=100)
    await store.ingest(old_matched, [event(old_matched, key="k-old", received=0)])
    await store.ingest(old_unmatched, [])
    old_events = await append(store, 2, received=1)
    await store.ingest(new_matched, [event(new_matched, key="k-new", received=100)])
    await store.ingest(new_unmatched, [])
    new_events = await append(store, 1, received=101)
    old_message, _ = await store.claim_message(
        dataclasses.replace(sent_message("P-old"), created_at=at(0))
    )
    new_message, _ = await store.claim_message(
        dataclasses.replace(sent_message("P-new"), created_at=at(100))
    )
    await lease(store, "core", "a", start_after=0)  # leases every event

    nothing = await store.purge(
        events_before=None, requests_before=None, messages_before=None, dedupe_before=None
    )
    assert nothing == dict.fromkeys(
        ("events", "requests", "unmatched", "messages", "dedupe_keys", "leases"), 0
    )

    counts = await store.purge(
        events_before=at(50),
        requests_before=at(50),
        unmatched_before=at(50),
        messages_before=at(50),
        dedupe_before=at(50),
    )

    assert counts == {
        "events": 3,
        "requests": 1 + 2,  # old_matched and the two `append` requests (matched, t=0)
        "unmatched": 1,
        "messages": 1,
        "dedupe_keys": 1,
        "leases": 3,
    }
    assert [e.cursor for e in await store.read_events(0)][-1] == new_events[-1]
    assert not set(old_events) & {e.cursor for e in await store.read_events(0)}
    assert await store.get_webhook_request(old_matched.id) is None
    assert await store.get_webhook_request(old_unmatched.id) is None
    assert await store.get_webhook_request(new_matched.id) == new_matched
    assert await store.get_webhook_request(new_unmatched.id) == new_unmatched
    assert await store.get_message(old_message.id) is None
    assert await store.get_message(new_message.id) == new_message
    # The old key was purged: the same event is new again; the new key still dedupes.
    again = webhook(received=200)
    outcome = await store.ingest(
        again, [event(again, key="k-old", received=200), event(again, key="k-new", received=200)]
    )
    assert (len(outcome.events), outcome.duplicates) == (1, 1)
    # The consumer's leases of purged events are gone; its kept ones expire and come back.
    assert len(await lease(store, "core", "b", now=1_000, limit=1_000)) == 3


async def test_purge_keeps_a_prefix_of_the_log_and_unmatched_apart(store: Store) -> None:
    # Out of order receive times: the log is purged up to the first event new enough.
    cursors = [
        *(await append(store, 1, received=0)),
        *(await append(store, 1, received=100)),
        *(await append(store, 1, received=0)),
    ]
    old_unmatched = webhook(outcome=WebhookOutcome.UNMATCHED, received=0)
    await store.ingest(old_unmatched, [])

    counts = await store.purge(
        events_before=at(50), requests_before=at(50), messages_before=None, dedupe_before=None
    )

    assert counts["events"] == 1 and counts["unmatched"] == 0
    assert [e.cursor for e in await store.read_events(0)] == cursors[1:]
    assert await store.earliest_cursor() == cursors[1] - 1
    assert await store.get_webhook_request(old_unmatched.id) == old_unmatched


# ---------------------------------------------------------------------------------------------
# Subscription state


async def test_set_subscription_changes_only_the_subscription(store: Store) -> None:
    record = InstallationRecord(
        id="inst-sub",
        org_id="org-1",
        integration_id="acme",
        properties={"API Key": "sealed"},
        numbers=(NumberAssignment(number="+15550001111", given="5550001111", users=("7",)),),
        default_region="US",
        enabled=True,
        webhook_token_hash="hash-sub",
        subscription_state="pending",
        subscription_error=None,
        created_at=T0,
        updated_at=T0,
    )
    await store.create_installation(record)

    await store.set_subscription("inst-sub", state="failed", error="HTTP 500 from provider")
    assert await store.get_installation("inst-sub") == dataclasses.replace(
        record, subscription_state="failed", subscription_error="HTTP 500 from provider"
    )
    await store.set_subscription("inst-sub", state="subscribed", error=None)
    assert await store.get_installation("inst-sub") == dataclasses.replace(
        record, subscription_state="subscribed", subscription_error=None
    )
    with pytest.raises(RecordNotFound):
        await store.set_subscription("nope", state="subscribed", error=None)


def test_event_filter_matches() -> None:
    # A pure check of the helper the filter test above compares the store with.
    sample: Sequence[NewEvent] = [event(org_id="o", integration_id="i", type="mms")]
    assert EventFilter().matches(sample[0])
    assert EventFilter(org_id="o", integration_id="i", types=frozenset({"mms"})).matches(sample[0])
    assert not EventFilter(types=frozenset({"message"})).matches(sample[0])
    assert not EventFilter(org_id="x").matches(sample[0])


async def test_consumer_frontiers_name_each_consumer_and_its_frontier(store: Store) -> None:
    assert await store.consumer_frontiers() == {}
    first = await append(store, 3)
    await lease(store, "audit", "s1", limit=2, start_after=0)  # hands out two of three
    await lease(store, "billing", "s1")  # from now: after the three
    assert await store.consumer_frontiers() == {"audit": first[1], "billing": first[2]}
