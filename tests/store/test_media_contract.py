"""The media records and media holds (docs/media.md), on every store: a hold is written with its
webhook (its dedupe key claimed then), leased by one process at a time, and released as an event
with the next cursor and its files; stored files are kept and purged by age."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from test_inbound_contract import at, event, held, webhook

from server.store import (
    Conflict,
    EventMedia,
    InboundEventType,
    MediaHold,
    MediaOrigin,
    MediaRecord,
    Store,
    WebhookOutcome,
)


def hold(hold_id: str, *, key: str | None = None, received: float = 0) -> MediaHold:
    request = webhook(received=received)
    held_event = event(request, key=key, type=InboundEventType.MMS, received=received)
    return MediaHold(
        id=hold_id,
        event=held_event,
        progress=(),
        held_at=at(received),
        release_by=at(received + 60),
        next_attempt_at=at(received),
    )


def media(media_id: str, *, created: float = 0) -> MediaRecord:
    return MediaRecord(
        id=media_id,
        org_id="org-1",
        installation_id="inst-1",
        integration_id="acme",
        origin=MediaOrigin.INBOUND,
        blob_key=f"media/org/{media_id}",
        content_type="image/jpeg",
        size=1234,
        sha256="ab" * 32,
        source="https://media.example/1.jpg",
        created_at=at(created),
    )


async def test_a_hold_is_written_with_its_webhook_and_its_dedupe_key_claimed(store: Store) -> None:
    first = hold("h1", key="inst-1|P1")
    outcome = await store.ingest(webhook(), [], media_holds=[first])
    assert (outcome.events, outcome.duplicates) == ((), 0)
    again = await store.ingest(webhook(), [], media_holds=[dataclasses.replace(first, id="h2")])
    assert again.duplicates == 1
    # and an ordinary event with the same key is a duplicate too
    dup = await store.ingest(webhook(), [first.event])
    assert dup.duplicates == 1
    due = await store.due_media_holds(at(0), limit=10)
    assert [h.id for h in due] == ["h1"]
    assert due[0].event == first.event
    assert await store.latest_cursor() == 0


async def test_a_conflicting_hold_id_rolls_back_the_webhook(store: Store) -> None:
    await store.ingest(webhook(), [], media_holds=[hold("h1")])
    request = webhook()
    with pytest.raises(Conflict):
        await store.ingest(request, [], media_holds=[hold("h1")])
    assert await store.get_webhook_request(request.id) is None


async def test_one_lease_at_a_time_and_an_expired_lease_is_taken_over(store: Store) -> None:
    await store.ingest(webhook(), [], media_holds=[hold("h1")])
    leases = await asyncio.gather(
        *(
            store.lease_media_hold("h1", owner=f"w{n}", lease_until=at(30), now=at(1))
            for n in range(4)
        )
    )
    taken = [lease for lease in leases if lease is not None]
    assert len(taken) == 1
    assert taken[0].lease_owner is not None and taken[0].lease_until == at(30)
    assert await store.due_media_holds(at(10), limit=10) == ()
    assert await store.lease_media_hold("h1", owner="late", lease_until=at(40), now=at(10)) is None
    over = await store.lease_media_hold("h1", owner="next", lease_until=at(90), now=at(31))
    assert over is not None and over.lease_owner == "next"
    # the first owner can no longer update or release it
    assert not await store.update_media_hold(
        "h1", owner=taken[0].lease_owner, progress=(), next_attempt_at=at(50)
    )
    assert await store.release_media_hold("h1", owner=taken[0].lease_owner, media=()) is None


async def test_progress_is_kept_and_the_hold_is_due_again_later(store: Store) -> None:
    await store.ingest(webhook(), [], media_holds=[hold("h1")])
    assert await store.lease_media_hold("h1", owner="w1", lease_until=at(30), now=at(0))
    kept = (
        EventMedia(
            original_url="https://media.example/1.jpg",
            media_id="m1",
            content_type="image/jpeg",
            size=10,
            sha256="cd" * 32,
        ),
        EventMedia(original_url="https://media.example/2.png"),
    )
    assert await store.update_media_hold("h1", owner="w1", progress=kept, next_attempt_at=at(5))
    assert await store.due_media_holds(at(4), limit=10) == ()
    assert await store.next_media_hold_at() == at(5)
    (due,) = await store.due_media_holds(at(5), limit=10)
    assert (due.progress, due.attempts, due.lease_owner) == (kept, 1, None)


async def test_release_appends_the_event_with_its_media_at_the_next_cursor(store: Store) -> None:
    await store.ingest(webhook(), [event(key="before")])
    first = hold("h1", key="inst-1|P9")
    await store.ingest(webhook(), [], media_holds=[first])
    await store.ingest(webhook(), [event(key="after")])
    assert await store.lease_media_hold("h1", owner="w1", lease_until=at(30), now=at(0))
    files = (
        EventMedia(
            original_url="https://media.example/1.jpg",
            media_id="m1",
            content_type="image/jpeg",
            size=10,
            sha256="cd" * 32,
        ),
        EventMedia(original_url="https://media.example/2.png", error="FETCH_FAILED: 404"),
    )
    released = await store.release_media_hold("h1", owner="w1", media=files)
    assert released is not None
    assert released.cursor == 3 and released.media == files
    assert released.media_urls == first.event.media_urls
    (read,) = await store.read_events(2)
    assert read == released
    # released once
    assert await store.release_media_hold("h1", owner="w1", media=files) is None
    assert await store.due_media_holds(at(100), limit=10) == ()
    assert await store.next_media_hold_at() is None


async def test_media_records_are_kept_read_and_purged_by_age(store: Store) -> None:
    await store.put_media(media("m1", created=0))
    await store.put_media(media("m2", created=10))
    with pytest.raises(Conflict):
        await store.put_media(media("m1"))
    assert await store.get_media("m1") == media("m1", created=0)
    assert await store.get_media("nope") is None
    expired = await store.expired_media(at(5), limit=10)
    assert [m.id for m in expired] == ["m1"]
    assert await store.delete_media(["m1", "gone"]) == 1
    assert await store.get_media("m1") is None
    assert (await store.get_media("m2")) is not None
    assert await store.expired_media(at(5) + timedelta(days=1), limit=1) == (
        media("m2", created=10),
    )


async def test_in_one_call_events_then_held_receipts_then_holds_claim_a_key(store: Store) -> None:
    """The order SQLite claims them in; PostgreSQL claims a batch's keys in one statement and
    must hand each to the same one."""
    request = webhook()
    first = event(request, key="k-event")
    receipt = held("P-k")
    holds = [
        hold("h-after-event", key="k-event"),
        hold("h-after-receipt", key=receipt.event.dedupe_key),
        hold("h-kept", key="k-hold"),
        hold("h-after-hold", key="k-hold"),
    ]
    outcome = await store.ingest(request, [first], held=[receipt], media_holds=holds)
    assert outcome.duplicates == 3
    assert [e.dedupe_key for e in outcome.events] == ["k-event"]
    assert [h.id for h in await store.due_media_holds(at(0), limit=10)] == ["h-kept"]
    assert await store.release_held(at(1_000)) == (receipt,)


async def test_a_replay_holds_media_and_dedupes_against_the_first_attempt(store: Store) -> None:
    request = webhook(outcome=WebhookOutcome.UNMATCHED)
    await store.ingest(request, [], media_holds=[hold("h1", key="k-first")])
    outcome = await store.mark_replayed(
        request.id,
        outcome=WebhookOutcome.MATCHED,
        reason="",
        events=[],
        media_holds=[hold("h2", key="k-first"), hold("h3", key="k-new")],
    )
    assert (outcome.events, outcome.duplicates) == ((), 1)
    assert [h.id for h in await store.due_media_holds(at(0), limit=10)] == ["h1", "h3"]


async def test_a_leased_hold_is_next_due_when_its_lease_ends(store: Store) -> None:
    await store.ingest(webhook(), [], media_holds=[hold("h1"), hold("h2", received=50)])
    assert await store.next_media_hold_at() == at(0)
    assert await store.lease_media_hold("h1", owner="w1", lease_until=at(30), now=at(0))
    assert await store.next_media_hold_at() == at(30)
    assert await store.lease_media_hold("h1", owner="w1", lease_until=at(70), now=at(30))
    assert await store.next_media_hold_at() == at(50)
    assert [h.id for h in await store.due_media_holds(at(60), limit=10)] == ["h2"]


async def test_a_released_opted_out_event_records_its_opt_out(store: Store) -> None:
    """A released event is appended like any other: an ``optedOut`` records an opt-out in the
    same transaction (server/store/_opt_outs.py)."""
    stop = dataclasses.replace(hold("h1"), event=event(type=InboundEventType.OPTED_OUT))
    await store.ingest(webhook(), [], media_holds=[stop])
    assert await store.list_opt_outs() == ()
    assert await store.lease_media_hold("h1", owner="w1", lease_until=at(30), now=at(0))
    assert await store.release_media_hold("h1", owner="w1", media=()) is not None
    (recorded,) = await store.list_opt_outs()
    assert (recorded.from_number, recorded.to_number) == (
        stop.event.to_number,
        stop.event.from_number,
    )
