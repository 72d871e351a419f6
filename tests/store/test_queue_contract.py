"""The Store contract of the send queue (docs/delivery.md): enqueue (with the claim that sends at
once), conversation order, due messages, claims under rate slots, the end of an attempt, leases,
cancel and the lists — through the protocol only, on both backends (and, for the races between
replicas, on two PostgreSQL stores sharing one database).

Every time is passed in (``now``); nothing here sleeps or reads the clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_inbound_contract import event, receipt, webhook

from server.store import (
    EventRecord,
    InboundEventType,
    MessageKind,
    MessageRecord,
    MessageState,
    MessageTransition,
    PostgresStore,
    RecordNotFound,
    Store,
)
from server.store._base import AttemptRecord
from server.store._queue import ClaimOutcome, OptedOut, OptOutRecord, QueueFull, RateSlot

T0 = datetime(2026, 3, 1, 9, 0, 0, 250000, tzinfo=UTC)
_ids = itertools.count(1)
_recipients = itertools.count(1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_message(
    *,
    to: str | None = None,
    installation: str = "inst-1",
    org: str = "org-1",
    key: str | None = None,
    created: float = 0,
    send_at: float | None = None,
    ordered: bool = True,
) -> MessageRecord:
    """A message as the service hands it to :meth:`Store.enqueue_message`; each to a recipient
    of its own (a conversation of its own) unless ``to`` is given."""
    return MessageRecord(
        id=f"msg-{next(_ids):05d}",
        org_id=org,
        installation_id=installation,
        integration_id="acme",
        kind=MessageKind.SMS,
        from_number="+15550000001",
        to_number=to if to is not None else f"+1555100{next(_recipients):04d}",
        text="hé 👋",
        media_url=None,
        state=MessageState.QUEUED,
        provider_message_id=None,
        provider_status=None,
        attempts=0,
        error=None,
        metadata={"ticket": "42"},
        idempotency_key=key,
        request_fingerprint="fp" if key else None,
        reply_json=None,
        created_at=at(created),
        updated_at=at(created),
        encoding="UCS-2",
        segments=1,
        send_at=None if send_at is None else at(send_at),
        ordered=ordered,
        request_json='{"extension": "101"}',
    )


def claim(
    owner: str = "w1", *, lease: float = 30, rates: Sequence[RateSlot] = ()
) -> tuple[str, datetime, Sequence[RateSlot]]:
    return owner, at(lease), rates


async def queued(
    store: Store, record: MessageRecord | None = None, *, now: float = 0
) -> MessageRecord:
    stored, created = await store.enqueue_message(record or new_message(created=now), now=at(now))
    assert created and stored.state is MessageState.QUEUED
    return stored


async def sending(
    store: Store, record: MessageRecord | None = None, *, owner: str = "w1", now: float = 0
) -> MessageRecord:
    message = await queued(store, record, now=now)
    outcome = await store.claim_queued(
        message.id, owner=owner, lease_until=at(now + 30), rates=(), now=at(now)
    )
    assert outcome.message is not None
    return outcome.message


async def state_of(store: Store, message: MessageRecord) -> MessageState:
    stored = await store.get_message(message.id)
    assert stored is not None
    return stored.state


def attempt(number: int, *, status: int | None = 202) -> AttemptRecord:
    return AttemptRecord(
        number=number,
        started_at=at(number),
        ended_at=at(number + 0.5),
        provider_status=status,
        reason="" if status == 202 else "RETRYABLE",
        error="" if status == 202 else "503 Service Unavailable",
        retry_at=None if status == 202 else at(number + 2),
    )


FIRST_ATTEMPT = attempt(1)


async def finish(
    store: Store,
    message: MessageRecord,
    state: MessageState,
    *,
    owner: str | None = "w1",
    tried: AttemptRecord | None = FIRST_ATTEMPT,
    now: float = 2,
    **fields: Any,
) -> tuple[MessageRecord | None, EventRecord | None]:
    """End the attempt ``tried`` (its number the message's attempts) of ``message`` (the caller's
    copy of it)."""
    return await store.finish_attempt(
        message,
        owner=owner,
        state=state,
        attempt=tried,
        attempts=1 if tried is None else tried.number,
        now=at(now),
        **fields,
    )


# ---------------------------------------------------------------------------------------------
# Enqueue


async def test_enqueue_without_a_claim_queues_the_message_due_now(store: Store) -> None:
    record = new_message(created=5)
    stored, created = await store.enqueue_message(record, now=at(5))
    assert created
    assert stored == dataclasses.replace(record, next_attempt_at=at(5))
    assert await store.get_message(record.id) == stored
    assert stored.lease_owner is None and stored.lease_until is None
    assert stored.request_json == '{"extension": "101"}'
    assert await store.count_queued("inst-1") == 1
    assert await store.next_due_at() == at(5)


async def test_enqueue_with_a_claim_leaves_at_once_leased_to_the_claimer(store: Store) -> None:
    record = new_message()
    rate = RateSlot("number:+15550000001", 1, 1.0, 5)
    stored, created = await store.enqueue_message(
        record, claim=claim("w1", lease=30, rates=[rate]), now=at(0)
    )
    assert created
    assert stored.state is MessageState.SENDING
    assert (stored.lease_owner, stored.lease_until) == ("w1", at(30))
    assert await store.get_message(record.id) == stored
    assert await store.count_queued("inst-1") == 0
    assert await store.due_messages(at(100), limit=10) == ()
    assert await store.next_due_at() is None


async def test_a_repeated_idempotency_key_returns_the_first_message(store: Store) -> None:
    first, _ = await store.enqueue_message(new_message(key="k-1"), now=at(0))
    again = new_message(key="k-1")
    stored, created = await store.enqueue_message(again, claim=claim("w2"), now=at(1))
    assert not created
    assert stored == first  # nothing of the repeat was used: still queued, not leased
    assert await store.get_message(again.id) is None
    # The key is the organisation's: another organisation's same key is a message of its own.
    other, created = await store.enqueue_message(new_message(key="k-1", org="org-2"), now=at(1))
    assert created and other.id != first.id
    assert await store.count_queued("inst-1") == 2


async def test_an_opted_out_recipient_is_refused_and_nothing_is_recorded(
    store: Store, request: pytest.FixtureRequest
) -> None:
    kept, _ = await store.enqueue_message(new_message(key="before", to="+15559990000"), now=at(0))
    opt_out = OptOutRecord(
        installation_id="inst-1",
        org_id="org-1",
        from_number="+15550000001",
        to_number="+15559990000",
        source="inbound",
        created_at=at(1),
    )
    await store.record_opt_out(opt_out)

    record = new_message(to="+15559990000")
    with pytest.raises(OptedOut) as refused:
        await store.enqueue_message(record, claim=claim(), now=at(2))
    assert refused.value.record == opt_out
    assert await store.get_message(record.id) is None
    # A repeat of a key is answered before anything else is checked.
    repeat, created = await store.enqueue_message(
        new_message(key="before", to="+15559990000"), now=at(3)
    )
    assert not created and repeat == kept
    # Only that sender and that installation.
    for other in (
        new_message(to="+15559990000", installation="inst-2"),
        dataclasses.replace(new_message(to="+15559990000"), from_number="+15550000002"),
    ):
        _, created = await store.enqueue_message(other, now=at(3))
        assert created


async def test_the_queue_cap_counts_the_installations_queued_messages(store: Store) -> None:
    for _ in range(2):
        await store.enqueue_message(new_message(), now=at(0), max_queued=2)
    record = new_message()
    with pytest.raises(QueueFull) as full:
        await store.enqueue_message(record, now=at(0), max_queued=2)
    assert (full.value.installation_id, full.value.limit) == ("inst-1", 2)
    assert await store.get_message(record.id) is None
    assert await store.count_queued("inst-1") == 2
    # Another installation has its own count; a message that leaves at once does not queue.
    _, created = await store.enqueue_message(
        new_message(installation="inst-2"), now=at(0), max_queued=2
    )
    assert created
    stored, _ = await store.enqueue_message(new_message(), claim=claim(), now=at(0), max_queued=2)
    assert stored.state is MessageState.SENDING
    # Without a cap (0) there is none.
    _, created = await store.enqueue_message(new_message(), now=at(0), max_queued=0)
    assert created and await store.count_queued("inst-1") == 3


async def test_the_queue_cap_follows_messages_leaving_and_reentering_the_queue(
    store: Store,
) -> None:
    """Every way out of ``queued`` (a claim, a cancel) frees a place under the cap, and every way
    back in (a retry, the repeat of a released key) takes one."""
    full = [await queued(store) for _ in range(3)]

    async def fits() -> bool:
        try:
            record = new_message()
            await store.enqueue_message(record, now=at(0), max_queued=4)
        except QueueFull:
            return False
        await store.cancel_message(record.id, now=at(0))  # and out again
        return True

    assert await fits()
    await queued(store)
    assert not await fits()
    claimed = await store.claim_queued(
        full[0].id, owner="w1", lease_until=at(30), rates=(), now=at(0)
    )
    assert claimed.message is not None
    assert await fits()
    await queued(store)
    assert not await fits()
    await store.cancel_message(full[1].id, now=at(1))
    assert await fits()
    await queued(store)
    # The claimed message fails in a way that sent nothing; it is queued for a retry.
    retry = dataclasses.replace(FIRST_ATTEMPT, retry_at=at(5))
    await finish(store, full[0], MessageState.QUEUED, tried=retry, next_attempt_at=at(5))
    assert await store.count_queued("inst-1") == 5
    assert not await fits()
    await store.cancel_message(full[2].id, now=at(2))
    assert not await fits()  # still at the cap: 4 queued
    assert await store.count_queued("inst-1") == 4


# ---------------------------------------------------------------------------------------------
# Conversation order


async def test_a_conversation_leaves_in_the_order_it_was_accepted(store: Store) -> None:
    to = "+15552220000"
    first = await queued(store, new_message(to=to, created=0), now=0)
    second, _ = await store.enqueue_message(new_message(to=to, created=1), claim=claim(), now=at(1))
    assert second.state is MessageState.QUEUED  # held back: the first is waiting

    assert [m.id for m in await store.due_messages(at(2), limit=10)] == [first.id]
    held = await store.claim_queued(second.id, owner="w1", lease_until=at(30), rates=(), now=at(2))
    assert held == ClaimOutcome()

    claimed = await store.claim_queued(
        first.id, owner="w1", lease_until=at(30), rates=(), now=at(2)
    )
    assert claimed.message is not None
    # Still held back while the first is sending (a retry of it would hold it back too).
    assert await store.due_messages(at(3), limit=10) == ()
    again = await store.claim_queued(second.id, owner="w2", lease_until=at(30), rates=(), now=at(3))
    assert again == ClaimOutcome()

    await finish(store, first, MessageState.SENT, now=4)
    assert [m.id for m in await store.due_messages(at(4), limit=10)] == [second.id]
    claimed = await store.claim_queued(
        second.id, owner="w2", lease_until=at(30), rates=(), now=at(4)
    )
    assert claimed.message is not None and claimed.message.state is MessageState.SENDING


async def test_unordered_messages_and_other_conversations_do_not_wait(store: Store) -> None:
    to = "+15552220001"
    await queued(store, new_message(to=to), now=0)
    unordered, _ = await store.enqueue_message(
        new_message(to=to, created=1, ordered=False), claim=claim(), now=at(1)
    )
    assert unordered.state is MessageState.SENDING
    elsewhere, _ = await store.enqueue_message(
        new_message(to="+15552220002", created=1), claim=claim(), now=at(1)
    )
    assert elsewhere.state is MessageState.SENDING
    other_installation, _ = await store.enqueue_message(
        new_message(to=to, created=1, installation="inst-2"), claim=claim(), now=at(1)
    )
    assert other_installation.state is MessageState.SENDING
    # Queued unordered behind a waiting one: due all the same.
    late = await queued(store, new_message(to=to, created=2, ordered=False), now=2)
    assert late.id in {m.id for m in await store.due_messages(at(2), limit=10)}


async def test_a_cancelled_message_no_longer_holds_its_conversation(store: Store) -> None:
    to = "+15552220003"
    first = await queued(store, new_message(to=to), now=0)
    second = await queued(store, new_message(to=to, created=1), now=1)
    assert [m.id for m in await store.due_messages(at(1), limit=10)] == [first.id]
    await store.cancel_message(first.id, now=at(2))
    assert [m.id for m in await store.due_messages(at(2), limit=10)] == [second.id]


# ---------------------------------------------------------------------------------------------
# Due messages and scheduling


async def test_due_messages_serve_installations_in_turn(store: Store) -> None:
    a = [
        await queued(store, new_message(installation="inst-a", created=n), now=n) for n in range(3)
    ]
    b = await queued(store, new_message(installation="inst-b", created=5), now=5)
    # Two accepted in the same microsecond: by id.
    c1 = await queued(store, new_message(installation="inst-c", created=6), now=6)
    c2 = await queued(store, new_message(installation="inst-c", created=6), now=6)

    # Installations in turn: the oldest of each, then the second oldest of each, …
    everything = await store.due_messages(at(10), limit=10)
    assert [m.id for m in everything] == [a[0].id, b.id, c1.id, a[1].id, c2.id, a[2].id]
    # At most `limit`: A's backlog does not keep B and C out.
    due = await store.due_messages(at(10), limit=3)
    assert [m.id for m in due] == [a[0].id, b.id, c1.id]
    assert [m.id for m in await store.due_messages(at(1), limit=10)] == [a[0].id, a[1].id]


async def test_a_scheduled_message_waits_for_its_time(store: Store) -> None:
    record = new_message(send_at=60)
    stored, _ = await store.enqueue_message(record, claim=claim(), now=at(0))
    assert stored.state is MessageState.QUEUED and stored.next_attempt_at == at(60)
    assert await store.due_messages(at(59), limit=10) == ()
    assert await store.next_due_at() == at(60)
    early = await store.claim_queued(
        record.id, owner="w1", lease_until=at(90), rates=(), now=at(59)
    )
    assert early == ClaimOutcome()
    assert [m.id for m in await store.due_messages(at(60), limit=10)] == [record.id]
    claimed = await store.claim_queued(
        record.id, owner="w1", lease_until=at(90), rates=(), now=at(60)
    )
    assert claimed.message is not None
    assert await store.next_due_at() is None


async def test_a_message_scheduled_later_does_not_hold_back_todays(store: Store) -> None:
    to = "+15552220004"
    await store.enqueue_message(new_message(to=to, send_at=3600), now=at(0))
    today, _ = await store.enqueue_message(new_message(to=to, created=1), claim=claim(), now=at(1))
    assert today.state is MessageState.SENDING


# ---------------------------------------------------------------------------------------------
# Rate slots


async def test_a_rate_gives_its_burst_then_refuses_until_a_slot_is_free(store: Store) -> None:
    rate = RateSlot("number:+15550000001", 1, 0.5, 2)  # 2 a second, a burst of 2
    messages = [await queued(store, now=0) for _ in range(4)]

    outcomes = [
        await store.claim_queued(m.id, owner="w1", lease_until=at(30), rates=[rate], now=at(0))
        for m in messages[:3]
    ]
    assert [o.message is not None for o in outcomes] == [True, True, False]
    refused = outcomes[2]
    assert refused.key == "number:+15550000001"
    assert refused.retry_in_s == pytest.approx(0.5)
    assert await state_of(store, messages[2]) is MessageState.QUEUED

    # Not yet at 0.4 s; at 0.5 s one slot, then none again.
    early = await store.claim_queued(
        messages[2].id, owner="w1", lease_until=at(30), rates=[rate], now=at(0.4)
    )
    assert early.message is None and early.retry_in_s == pytest.approx(0.1)
    later = [
        await store.claim_queued(m.id, owner="w1", lease_until=at(30), rates=[rate], now=at(0.5))
        for m in messages[2:]
    ]
    assert [o.message is not None for o in later] == [True, False]
    assert later[1].retry_in_s == pytest.approx(0.5)


async def test_a_refused_rate_takes_no_slot_of_the_others(store: Store) -> None:
    wide = RateSlot("a:installation", 1, 1.0, 2)
    narrow = RateSlot("b:number", 1, 1.0, 1)
    m1, m2, m3 = [await queued(store, now=0) for _ in range(3)]
    first = await store.claim_queued(
        m1.id, owner="w1", lease_until=at(30), rates=[wide, narrow], now=at(0)
    )
    assert first.message is not None
    refused = await store.claim_queued(
        m2.id, owner="w1", lease_until=at(30), rates=[wide, narrow], now=at(0)
    )
    assert refused.message is None and refused.key == "b:number"
    assert refused.retry_in_s == pytest.approx(1.0)
    # The wide rate still has its second slot: the refused claim gave back the one it took.
    third = await store.claim_queued(m3.id, owner="w1", lease_until=at(30), rates=[wide], now=at(0))
    assert third.message is not None


async def test_an_enqueue_refused_by_a_rate_is_queued_due_now(store: Store) -> None:
    rate = RateSlot("number:+15550000001", 1, 1.0, 1)
    first, _ = await store.enqueue_message(new_message(), claim=claim(rates=[rate]), now=at(0))
    second, _ = await store.enqueue_message(new_message(), claim=claim(rates=[rate]), now=at(0))
    assert (first.state, second.state) == (MessageState.SENDING, MessageState.QUEUED)
    assert second.next_attempt_at == at(0) and second.lease_owner is None
    refused = await store.claim_queued(
        second.id, owner="w1", lease_until=at(30), rates=[rate], now=at(0)
    )
    assert refused.retry_in_s == pytest.approx(1.0)


async def test_a_cost_above_the_burst_waits_for_an_idle_key(store: Store) -> None:
    def rate(cost: float) -> RateSlot:
        return RateSlot("segments:+15550000001", cost, 1.0, 2)

    m1, m2 = await queued(store, now=0), await queued(store, now=0)
    big = await store.claim_queued(
        m1.id, owner="w1", lease_until=at(30), rates=[rate(3)], now=at(0)
    )
    assert big.message is not None  # the key was idle
    small = await store.claim_queued(
        m2.id, owner="w1", lease_until=at(30), rates=[rate(1)], now=at(0)
    )
    assert small.message is None and small.retry_in_s == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------
# The end of an attempt


async def test_finish_sent_records_the_answer_and_clears_the_lease(store: Store) -> None:
    message = await sending(store)
    finished, published = await finish(
        store,
        message,
        MessageState.SENT,
        provider_message_id="P-1",
        provider_status=202,
        reply_json='{"state": "sent"}',
        outcome_event=event(type=InboundEventType.MESSAGE_SENT, message_id=message.id),
    )
    assert published is None  # the caller had the outcome: nothing to publish
    assert finished is not None
    assert finished.state is MessageState.SENT
    assert (finished.provider_message_id, finished.provider_status) == ("P-1", 202)
    assert finished.reply_json == '{"state": "sent"}' and finished.attempts == 1
    assert finished.lease_owner is None and finished.lease_until is None
    assert finished.attempt_log == (attempt(1),)
    assert finished.updated_at == at(2)
    assert await store.get_message(message.id) == finished
    assert await store.read_events(0) == ()
    found = await store.find_message_by_provider_id("acme", "P-1")
    assert found is not None and found.id == message.id


async def test_finish_failed_keeps_the_error_and_the_given_fields_only(store: Store) -> None:
    message = await sending(store)
    finished, _ = await finish(
        store,
        message,
        MessageState.FAILED,
        tried=attempt(1, status=400),
        error="400: invalid number",
        provider_status=400,
    )
    assert finished is not None and finished.state is MessageState.FAILED
    assert (finished.error, finished.provider_status) == ("400: invalid number", 400)
    assert finished.provider_message_id is None and finished.reply_json is None
    assert finished.text == message.text and finished.metadata == message.metadata


async def test_finish_queued_retries_at_its_time(store: Store) -> None:
    message = await sending(store)
    finished, _ = await finish(
        store,
        message,
        MessageState.QUEUED,
        tried=attempt(1, status=503),
        provider_status=503,
        error="503 Service Unavailable",
        next_attempt_at=at(5),
    )
    assert finished is not None and finished.state is MessageState.QUEUED
    assert finished.next_attempt_at == at(5) and finished.lease_owner is None
    assert await store.due_messages(at(4), limit=10) == ()
    assert [m.id for m in await store.due_messages(at(5), limit=10)] == [message.id]
    assert await store.count_queued("inst-1") == 1
    again = await store.claim_queued(
        message.id, owner="w2", lease_until=at(40), rates=(), now=at(5)
    )
    assert again.message is not None and again.message.attempt_log == (attempt(1, status=503),)


async def test_finish_by_another_owner_changes_nothing(store: Store) -> None:
    message = await sending(store, owner="w1")
    result = await finish(store, message, MessageState.SENT, owner="w2")
    assert result == (None, None)
    assert await store.get_message(message.id) == message
    # None: whoever holds the lease (the lease expired; its process is gone).
    finished, _ = await finish(
        store,
        message,
        MessageState.FAILED,
        owner=None,
        tried=None,
        error="OUTCOME_UNKNOWN",
        now=40,
    )
    assert finished is not None and finished.state is MessageState.FAILED
    assert finished.attempt_log == ()
    # Finished: no lease left to finish under.
    result = await finish(store, message, MessageState.SENT, now=41)
    assert result == (None, None)
    result = await finish(store, message, MessageState.SENT, owner=None, now=41)
    assert result == (None, None)
    with pytest.raises(RecordNotFound):
        await finish(store, new_message(), MessageState.SENT, owner=None, tried=None, now=1)


async def test_a_receipt_that_overtook_the_answer_keeps_its_state(store: Store) -> None:
    message = await sending(store)
    await store.ingest(
        webhook(),
        [receipt("P-9", message_id=message.id)],
        [MessageTransition(message_id=message.id, state=MessageState.DELIVERED)],
    )
    assert await state_of(store, message) is MessageState.DELIVERED
    finished, _ = await finish(
        store,
        message,
        MessageState.SENT,
        provider_message_id="P-9",
    )
    assert finished is not None
    assert finished.state is MessageState.DELIVERED
    assert finished.provider_message_id == "P-9" and finished.lease_owner is None


async def test_a_message_that_asked_for_its_outcome_publishes_it(store: Store) -> None:
    message = await queued(store)
    marked = await store.request_outcome(message.id)
    assert marked.notify and marked.state is MessageState.QUEUED
    claimed = await store.claim_queued(
        message.id, owner="w1", lease_until=at(30), rates=(), now=at(1)
    )
    assert claimed.message is not None and claimed.message.notify
    outcome = event(
        type=InboundEventType.MESSAGE_SENT,
        message_id=message.id,
        provider_message_id="P-7",
        metadata={"ticket": "42"},
        received_at=at(2),
        key=None,
    )
    finished, published = await finish(
        store,
        message,
        MessageState.SENT,
        provider_message_id="P-7",
        outcome_event=outcome,
    )
    assert finished is not None and finished.state is MessageState.SENT
    assert published is not None and published.cursor >= 1
    assert published.message_id == message.id and published.type == "messageSent"
    assert await store.read_events(0) == (published,)


async def test_an_outcome_event_given_as_a_function_is_built_only_when_published(
    store: Store,
) -> None:
    built: list[str] = []

    def outcome_of(message: MessageRecord) -> Any:
        def build() -> Any:
            built.append(message.id)
            return event(type=InboundEventType.MESSAGE_SENT, message_id=message.id)

        return build

    quiet = await sending(store)  # its caller has the outcome
    _, published = await finish(store, quiet, MessageState.SENT, outcome_event=outcome_of(quiet))
    assert published is None and built == []
    waited = await queued(store)
    await store.request_outcome(waited.id)
    await store.claim_queued(waited.id, owner="w1", lease_until=at(30), rates=(), now=at(0))
    _, published = await finish(
        store, waited, MessageState.SENT, outcome_event=outcome_of(waited)
    )
    assert built == [waited.id]
    assert published is not None and published.message_id == waited.id
    assert await store.read_events(0) == (published,)


async def test_a_retry_publishes_nothing_yet(store: Store) -> None:
    message = await queued(store)
    await store.request_outcome(message.id)
    await store.claim_queued(message.id, owner="w1", lease_until=at(30), rates=(), now=at(0))
    _, published = await finish(
        store,
        message,
        MessageState.QUEUED,
        tried=attempt(1, status=503),
        next_attempt_at=at(3),
        outcome_event=event(type=InboundEventType.MESSAGE_FAILED, message_id=message.id),
        now=1,
    )
    assert published is None and await store.read_events(0) == ()


async def test_the_attempt_log_keeps_the_last_twenty_in_order(store: Store) -> None:
    message = await queued(store)
    for number in range(1, 26):
        claimed = await store.claim_queued(
            message.id, owner="w1", lease_until=at(number + 30), rates=(), now=at(number)
        )
        assert claimed.message is not None
        # The copy as claimed holds the log; the first copy does not (the log is read whole).
        finished, _ = await finish(
            store,
            claimed.message if number % 2 else message,
            MessageState.QUEUED,
            tried=attempt(number, status=503),
            next_attempt_at=at(number + 1),
            now=number + 0.5,
        )
        assert finished is not None and finished == await store.get_message(message.id)
    stored = await store.get_message(message.id)
    assert stored is not None and stored.attempts == 25
    assert [a.number for a in stored.attempt_log] == list(range(6, 26))
    assert stored.attempt_log[-1] == attempt(25, status=503)


async def test_a_send_of_several_requests_keeps_its_parts(store: Store) -> None:
    message = await sending(store)
    finished, _ = await finish(
        store,
        message,
        MessageState.SENT,
        provider_message_id="P-a",
        provider_message_ids=("P-a", "", "P-c"),
    )
    assert finished is not None and finished.provider_message_ids == ("P-a", "", "P-c")
    found = await store.find_message_by_provider_id("acme", "P-c")
    assert found is not None and found.id == message.id


# ---------------------------------------------------------------------------------------------
# Leases, outcomes, requeue, cancel


async def test_expired_leases_oldest_first(store: Store) -> None:
    m1 = await queued(store)
    m2 = await queued(store)
    await store.claim_queued(m1.id, owner="w1", lease_until=at(10), rates=(), now=at(0))
    await store.claim_queued(m2.id, owner="w2", lease_until=at(5), rates=(), now=at(0))
    assert [m.id for m in await store.expired_leases(at(20), limit=10)] == [m2.id, m1.id]
    assert [m.id for m in await store.expired_leases(at(20), limit=1)] == [m2.id]
    assert [m.id for m in await store.expired_leases(at(7), limit=10)] == [m2.id]
    assert await store.expired_leases(at(5), limit=10) == ()  # ended before now, not at now
    await finish(store, m2, MessageState.FAILED, owner=None, tried=None, now=21)
    assert [m.id for m in await store.expired_leases(at(21), limit=10)] == [m1.id]


async def test_request_outcome_marks_only_a_waiting_message(store: Store) -> None:
    waiting = await sending(store)
    marked = await store.request_outcome(waiting.id)
    assert marked.notify and marked.state is MessageState.SENDING
    done = await sending(store)
    finished, _ = await finish(store, done, MessageState.SENT, now=1)
    assert finished is not None
    as_it_is = await store.request_outcome(done.id)
    assert as_it_is == finished and not as_it_is.notify
    with pytest.raises(RecordNotFound):
        await store.request_outcome("msg-unknown")


async def test_requeue_puts_back_only_a_failure_without_a_reply(store: Store) -> None:
    failed = await sending(store)
    await finish(
        store,
        failed,
        MessageState.FAILED,
        tried=attempt(1, status=503),
        error="503",
        now=1,
    )
    requeued = await store.requeue_message(failed.id, now=at(9))
    assert requeued is not None
    assert requeued.state is MessageState.QUEUED and requeued.next_attempt_at == at(9)
    assert [m.id for m in await store.due_messages(at(9), limit=10)] == [failed.id]

    replied = await sending(store)
    await finish(
        store,
        replied,
        MessageState.FAILED,
        tried=attempt(1, status=400),
        reply_json='{"error": "400"}',
        now=1,
    )
    assert await store.requeue_message(replied.id, now=at(9)) is None
    assert await store.requeue_message((await sending(store)).id, now=at(9)) is None
    assert await store.requeue_message("msg-unknown", now=at(9)) is None


async def test_cancel_takes_only_a_queued_message(store: Store) -> None:
    waiting = await queued(store, new_message(send_at=600))
    cancelled, done = await store.cancel_message(waiting.id, now=at(3))
    assert done and cancelled.state is MessageState.CANCELLED
    assert cancelled.updated_at == at(3)
    assert await store.get_message(waiting.id) == cancelled
    assert await store.due_messages(at(600), limit=10) == ()
    assert await store.count_queued("inst-1") == 0
    again, done = await store.cancel_message(waiting.id, now=at(4))
    assert not done and again == cancelled

    leased = await sending(store)
    as_it_is, done = await store.cancel_message(leased.id, now=at(3))
    assert not done and as_it_is == leased
    with pytest.raises(RecordNotFound):
        await store.cancel_message("msg-unknown", now=at(3))


# ---------------------------------------------------------------------------------------------
# Lists


async def test_list_messages_filters_and_pages_newest_first(store: Store) -> None:
    made: list[MessageRecord] = []
    for n in range(6):
        record = new_message(
            created=n // 2,  # two by two in the same microsecond: by id
            org="org-1" if n % 3 else "org-2",
            installation="inst-1" if n < 4 else "inst-2",
        )
        made.append(await queued(store, record, now=n // 2))
    cancelled, _ = await store.cancel_message(made[1].id, now=at(9))
    made[1] = cancelled
    newest_first = sorted(made, key=lambda m: (m.created_at, m.id), reverse=True)

    assert await store.list_messages() == tuple(newest_first)
    pages: list[MessageRecord] = []
    after: tuple[datetime, str] | None = None
    while True:
        page = await store.list_messages(after=after, limit=4)
        if not page:
            break
        pages.extend(page)
        after = (page[-1].created_at, page[-1].id)
    assert pages == newest_first

    def ids(found: Sequence[MessageRecord]) -> list[str]:
        return [m.id for m in found]

    assert ids(await store.list_messages(org_ids=frozenset({"org-2"}))) == ids(
        [m for m in newest_first if m.org_id == "org-2"]
    )
    assert await store.list_messages(org_ids=frozenset()) == ()
    assert ids(await store.list_messages(installation_id="inst-2")) == ids(
        [m for m in newest_first if m.installation_id == "inst-2"]
    )
    assert ids(await store.list_messages(states=frozenset({MessageState.CANCELLED}))) == [
        made[1].id
    ]
    assert ids(
        await store.list_messages(states=frozenset({MessageState.CANCELLED, MessageState.QUEUED}))
    ) == ids(newest_first)
    assert ids(await store.list_messages(created_after=at(1), created_before=at(2))) == ids(
        [m for m in newest_first if m.created_at == at(1)]
    )
    assert ids(
        await store.list_messages(
            org_ids=frozenset({"org-1"}), installation_id="inst-1", created_after=at(1)
        )
    ) == ids(
        [
            m
            for m in newest_first
            if m.org_id == "org-1" and m.installation_id == "inst-1" and m.created_at >= at(1)
        ]
    )


async def test_count_queued_counts_only_queued_messages(store: Store) -> None:
    assert await store.count_queued("inst-1") == 0
    await queued(store)
    await queued(store)
    await sending(store)
    cancelled = await queued(store)
    await store.cancel_message(cancelled.id, now=at(1))
    await queued(store, new_message(installation="inst-2"))
    assert await store.count_queued("inst-1") == 2
    assert await store.count_queued("inst-2") == 1


# ---------------------------------------------------------------------------------------------
# Replicas (PostgreSQL, the ``replicas`` fixture): the database decides every race


@pytest.mark.postgres
async def test_replicas_claiming_one_message_at_once_claim_it_once(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    messages = [await queued(a) for _ in range(20)]
    outcomes = await asyncio.gather(
        *(
            store.claim_queued(m.id, owner=owner, lease_until=at(30), rates=(), now=at(0))
            for m in messages
            for store, owner in ((a, "a"), (b, "b"))
        )
    )
    for n, message in enumerate(messages):
        pair = outcomes[2 * n : 2 * n + 2]
        winners = [o.message for o in pair if o.message is not None]
        assert len(winners) == 1, message.id
        stored = await a.get_message(message.id)
        assert stored is not None and stored.lease_owner == winners[0].lease_owner


@pytest.mark.postgres
async def test_replicas_enqueueing_one_conversation_send_one_at_a_time(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    for round_ in range(10):
        to = f"+1555333{round_:04d}"
        results = await asyncio.gather(
            *(
                store.enqueue_message(new_message(to=to), claim=claim(owner), now=at(0))
                for store, owner in ((a, "a"), (b, "b"), (a, "a2"), (b, "b2"))
            )
        )
        states = sorted(stored.state.value for stored, _ in results)
        assert states == ["queued", "queued", "queued", "sending"], to


@pytest.mark.postgres
async def test_a_rate_holds_for_the_cluster(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    rate = RateSlot("installation:inst-1", 1, 1.0, 3)
    messages = [await queued(a) for _ in range(12)]
    outcomes = await asyncio.gather(
        *(
            (a if n % 2 else b).claim_queued(
                m.id, owner="w", lease_until=at(30), rates=[rate], now=at(0)
            )
            for n, m in enumerate(messages)
        )
    )
    assert sum(o.message is not None for o in outcomes) == 3
    refused = [o for o in outcomes if o.message is None]
    assert all(o.key == rate.key and o.retry_in_s == pytest.approx(1.0) for o in refused)


async def test_the_queue_depth_counts_queued_messages_of_every_installation(
    store: Store,
) -> None:
    assert await store.queue_depth() == 0
    await store.enqueue_message(new_message(created=1), now=at(1))
    await store.enqueue_message(new_message(created=2, installation="inst-2"), now=at(2))
    await store.enqueue_message(new_message(), claim=claim("w1", lease=30), now=at(3))
    assert await store.queue_depth() == 2  # the claimed one is sending, not queued
