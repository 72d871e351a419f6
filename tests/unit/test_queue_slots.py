"""The delivery queue keeps every slot of a rate (docs/delivery.md, "Limits"): with a burst of 1
a slot taken late is lost for good, so the queue claims a message ahead, for its slot's instant,
and lets the message that can leave first go first. On a real SQLite store; the instants checked
are the claims' (the store's ``updated_at`` of a claim is the ``now`` it was claimed for)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.core.send._queue import DeliveryQueue
from server.store import (
    InstallationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    RateSlot,
    SqliteStore,
)

_ids = itertools.count(1)
INSTALLATION = RateSlot(key="i:inst-1", cost=1.0, interval_s=0.05, burst=1.0)


def held_back_number(number: str) -> RateSlot:
    return RateSlot(key=f"n:inst-1:{number}", cost=1.0, interval_s=1.0, burst=1.0)


def new_message(sender: str, now: datetime) -> MessageRecord:
    n = next(_ids)
    return MessageRecord(
        id=f"msg-{n:04d}",
        org_id="org-1",
        installation_id="inst-1",
        integration_id="acme",
        kind=MessageKind.SMS,
        from_number=sender,
        to_number=f"+1555100{n:04d}",  # a conversation of its own
        text="hi",
        media_url=None,
        state=MessageState.QUEUED,
        provider_message_id=None,
        provider_status=None,
        attempts=0,
        error=None,
        metadata={},
        idempotency_key=None,
        request_fingerprint=None,
        reply_json=None,
        created_at=now + timedelta(microseconds=n),  # accepted in this order
        updated_at=now,
        encoding="GSM-7",
        segments=1,
        send_at=None,
        ordered=True,
        request_json="{}",
    )


class Recorder:
    """The queue's deliver callback: what was claimed, in the order deliveries began."""

    def __init__(self, expected: int) -> None:
        self.claimed: list[MessageRecord] = []
        self._expected = expected
        self.done = asyncio.Event()

    async def deliver(
        self, message: MessageRecord, resolved: tuple[InstallationRecord, object] | None
    ) -> None:
        self.claimed.append(message)
        if len(self.claimed) >= self._expected:
            self.done.set()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "data") as opened:
        yield opened


async def rates_of(message: MessageRecord) -> tuple[RateSlot, ...]:
    if message.from_number == "+15550000001":
        return (held_back_number(message.from_number), INSTALLATION)
    return (INSTALLATION,)


def queue_for(store: SqliteStore, recorder: Recorder) -> DeliveryQueue:
    async def abandon(message: MessageRecord) -> None:
        raise AssertionError(f"nothing is abandoned here: {message.id}")

    return DeliveryQueue(
        store=store,
        deliver=recorder.deliver,  # type: ignore[arg-type]
        abandon=abandon,
        rates_of=rates_of,
        owner="w1",
        lease_s=60,
        poll_s=0.2,
    )


def claim_gaps(claimed: list[MessageRecord]) -> list[float]:
    instants = sorted(m.updated_at for m in claimed)
    return [(b - a).total_seconds() for a, b in itertools.pairwise(instants)]


async def test_a_late_read_of_the_queue_loses_no_slot(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read of the due messages comes 60 ms late (a busy store): the claims still follow
    one another by exactly the rate's interval."""
    read = store.due_messages

    async def slow_read(now: datetime, *, limit: int) -> tuple[MessageRecord, ...]:
        await asyncio.sleep(0.06)
        return await read(now, limit=limit)

    monkeypatch.setattr(store, "due_messages", slow_read)
    now = datetime.now(UTC)
    for _ in range(6):
        await store.enqueue_message(new_message("+15550000002", now), now=now)
    recorder = Recorder(6)
    queue = queue_for(store, recorder)
    await queue.start()
    try:
        await asyncio.wait_for(recorder.done.wait(), 30)
    finally:
        await queue.aclose(grace_s=1.0)
    assert [round(gap, 6) for gap in claim_gaps(recorder.claimed)] == [0.05] * 5


async def test_a_message_its_number_holds_back_does_not_hold_back_the_installation(
    store: SqliteStore,
) -> None:
    """The oldest message's number has no slot for a while: the installation's slots meanwhile
    go to the messages behind it, then it leaves in the first slot after its number's."""
    now = datetime.now(UTC)
    first = new_message("+15550000001", now)
    await store.enqueue_message(first, now=now)
    for _ in range(5):
        await store.enqueue_message(new_message("+15550000002", now), now=now)
    held = held_back_number("+15550000001")
    # The number's last message left (elsewhere) 0.88 s ago: its next slot is 0.12 s on.
    now = datetime.now(UTC)
    left = now - timedelta(seconds=held.interval_s - 0.12)
    taken, _ = await store.enqueue_message(
        new_message("+15550000001", left),
        claim=("elsewhere", now + timedelta(seconds=60), (held,)),
        now=left,
    )
    assert taken.state is MessageState.SENDING
    # Started only now: a queue running while the messages arrive may claim one and find the
    # next slot gone before the next one is written (a slot with nothing to send is lost).
    recorder = Recorder(6)
    queue = queue_for(store, recorder)
    await queue.start()
    try:
        await asyncio.wait_for(recorder.done.wait(), 30)
    finally:
        await queue.aclose(grace_s=1.0)
    order = [m.id for m in sorted(recorder.claimed, key=lambda m: m.updated_at)]
    assert order.index(first.id) > 0
    assert [round(gap, 6) for gap in claim_gaps(recorder.claimed)] == [0.05] * 5


async def test_a_message_stopped_before_its_slot_is_queued_again(store: SqliteStore) -> None:
    """Claimed ahead for a slot and waiting for it when the process stops: nothing was sent, so
    it is queued again for that slot (not left ``sending`` to end as OUTCOME_UNKNOWN)."""
    recorder = Recorder(1)
    queue = queue_for(store, recorder)
    now = datetime.now(UTC)
    message, _ = await store.enqueue_message(new_message("+15550000002", now), now=now)
    claimed = await store.claim_queued(
        message.id, owner="w1", lease_until=now + timedelta(seconds=60), rates=(), now=now
    )
    assert claimed.message is not None
    slot = now + timedelta(seconds=60)
    queue.begin(claimed.message, at=slot)
    await asyncio.sleep(0)  # the delivery starts waiting for its slot
    await queue.aclose(grace_s=0.0)
    stored = await store.get_message(message.id)
    assert stored is not None
    assert (stored.state, stored.next_attempt_at, stored.lease_owner) == (
        MessageState.QUEUED,
        slot,
        None,
    )
    assert recorder.claimed == []
