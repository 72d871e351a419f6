"""(ext) The Store contract of a send of several requests (docs/format.md, "Several requests per
send"): every part's provider id is kept, a receipt for any part finds the message, and the
message's state follows its parts' by one rule (server/store/_transitions.py, PARTS_RULE)."""

from __future__ import annotations

import dataclasses

from test_inbound_contract import held, receipt, sent_message, webhook

from server.store import (
    InboundEventType,
    MessageRecord,
    MessageState,
    MessageTransition,
    Store,
    part_of,
)
from server.store._transitions import parts_state


async def _parts_message(store: Store, *ids: str) -> MessageRecord:
    message, _ = await store.claim_message(sent_message(None, state=MessageState.PENDING))
    return await store.update_message(
        message.id,
        state=MessageState.SENT,
        provider_message_id=ids[0],
        provider_message_ids=ids,
    )


async def _receive(store: Store, message: MessageRecord, part: str, state: MessageState) -> None:
    type_ = {
        MessageState.DELIVERED: InboundEventType.MESSAGE_DELIVERED,
        MessageState.FAILED: InboundEventType.MESSAGE_FAILED,
        MessageState.SENT: InboundEventType.MESSAGE_SENT,
    }[state]
    found = await store.find_message_by_provider_id("acme", part)
    assert found is not None and found.id == message.id
    transition = MessageTransition(
        message_id=message.id,
        state=state,
        error="30003: unreachable" if state is MessageState.FAILED else None,
        part=part_of(found, part),
    )
    await store.ingest(webhook(), [receipt(part, type=type_, message_id=message.id)], [transition])


async def _state(store: Store, message: MessageRecord) -> tuple[MessageState, str | None]:
    stored = await store.get_message(message.id)
    assert stored is not None
    return stored.state, stored.error


async def test_every_part_id_is_kept_and_finds_the_message(store: Store) -> None:
    message = await _parts_message(store, "P-a", "", "P-c")
    assert message.provider_message_ids == ("P-a", "", "P-c")
    assert message.provider_ids == ("P-a", "", "P-c")
    stored = await store.get_message(message.id)
    assert stored is not None and stored.provider_message_ids == ("P-a", "", "P-c")
    for part in ("P-a", "P-c"):
        found = await store.find_message_by_provider_id("acme", part)
        assert found is not None and found.id == message.id
    assert await store.find_message_by_provider_id("acme", "") is None
    assert await store.find_message_by_provider_id("zeta", "P-c") is None


async def test_a_message_of_one_request_keeps_no_parts(store: Store) -> None:
    message, _ = await store.claim_message(sent_message("P-one"))
    assert message.provider_message_ids == ()
    assert message.provider_ids == ("P-one",)


async def test_delivered_once_every_part_was_delivered(store: Store) -> None:
    message = await _parts_message(store, "P-1", "P-2")
    await _receive(store, message, "P-2", MessageState.DELIVERED)
    assert await _state(store, message) == (MessageState.SENT, None)
    await _receive(store, message, "P-1", MessageState.DELIVERED)
    assert await _state(store, message) == (MessageState.DELIVERED, None)


async def test_failed_as_soon_as_one_part_failed_and_it_sticks(store: Store) -> None:
    message = await _parts_message(store, "P-1", "P-2")
    await _receive(store, message, "P-1", MessageState.FAILED)
    assert await _state(store, message) == (MessageState.FAILED, "30003: unreachable")
    await _receive(store, message, "P-2", MessageState.DELIVERED)
    assert await _state(store, message) == (MessageState.FAILED, "30003: unreachable")


async def test_a_part_delivered_then_failed_stays_delivered(store: Store) -> None:
    message = await _parts_message(store, "P-1", "P-2")
    await _receive(store, message, "P-1", MessageState.DELIVERED)
    await _receive(store, message, "P-1", MessageState.FAILED)  # sticky per part
    await _receive(store, message, "P-2", MessageState.DELIVERED)
    assert await _state(store, message) == (MessageState.DELIVERED, None)


async def test_held_receipts_of_a_later_part_complete_with_the_message(store: Store) -> None:
    first = held("P-2", key="k-2")
    await store.ingest(webhook(), [], held=[first])
    message = await _parts_message(store, "P-1", "P-2")
    outcome = await store.correlate_held("acme", "P-2", message)
    assert [e.message_id for e in outcome.events] == [message.id]
    assert await _state(store, message) == (MessageState.SENT, None)  # P-1 not delivered yet
    again = held("P-1", key="k-1")
    await store.ingest(webhook(), [], held=[again])
    await store.correlate_held("acme", "P-1", message)
    assert await _state(store, message) == (MessageState.DELIVERED, None)


def test_the_parts_rule() -> None:
    sent, delivered, failed = MessageState.SENT, MessageState.DELIVERED, MessageState.FAILED
    assert parts_state([delivered, delivered]) is delivered
    assert parts_state([delivered, sent]) is sent
    assert parts_state([delivered, failed, sent]) is failed
    assert parts_state([]) is sent
    assert dataclasses.replace(MessageTransition(message_id="m", state=sent)).part is None
