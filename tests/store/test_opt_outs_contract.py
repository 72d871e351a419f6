"""The Store contract of opt-outs (docs/delivery.md, "Opt-outs"), in every store: recording (an
existing one kept), clearing, listing (filters, newest first, paging after the last one), and the
rule by which ingested and replayed ``optedOut`` / ``optedIn`` events record and clear them."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from test_inbound_contract import at, event, held, webhook

from server.store import (
    Conflict,
    InboundEventType,
    NewEvent,
    OptOutRecord,
    Store,
    WebhookOutcome,
    WebhookRequestRecord,
)

OUT = InboundEventType.OPTED_OUT
IN = InboundEventType.OPTED_IN
OURS = "+15550000001"  # the installation's number: the events' `to`
THEIRS = "+15550000009"  # the recipient who opts out: the events' `from`


def opt_out(
    *,
    installation: str = "inst-1",
    org: str = "org-1",
    from_: str = OURS,
    to: str = THEIRS,
    source: str = "provider",
    created: float = 0,
) -> OptOutRecord:
    return OptOutRecord(
        installation_id=installation,
        org_id=org,
        from_number=from_,
        to_number=to,
        source=source,
        created_at=at(created),
    )


def stop(
    type: str = OUT,
    *,
    request: WebhookRequestRecord | None = None,
    recipient: str = THEIRS,
    **changes: object,
) -> NewEvent:
    """An opt-out (or, ``type=IN``, opt-in) event from ``recipient`` to our number."""
    return event(request, type=type, from_number=recipient, to_number=OURS, text="STOP", **changes)


def inbound(record: NewEvent) -> OptOutRecord:
    """The opt-out ``record`` (an optedOut event) makes."""
    return OptOutRecord(
        installation_id=record.installation_id,
        org_id=record.org_id,
        from_number=record.to_number,
        to_number=record.from_number,
        source="inbound",
        created_at=record.received_at,
    )


async def ingest(store: Store, *events: NewEvent) -> int:
    """Ingest ``events`` in one request; how many were appended."""
    request = webhook()
    stamped = [dataclasses.replace(e, request_id=request.id) for e in events]
    outcome = await store.ingest(request, stamped)
    return len(outcome.events)


# ---------------------------------------------------------------------------------------------
# record, clear, list


async def test_record_keeps_an_existing_opt_out_and_clear_removes_it(store: Store) -> None:
    first = opt_out(source="provider", created=5)
    await store.record_opt_out(first)
    await store.record_opt_out(dataclasses.replace(first, source="inbound", created_at=at(9)))
    assert await store.list_opt_outs() == (first,)

    assert await store.clear_opt_out("inst-1", OURS, THEIRS) is True
    assert await store.clear_opt_out("inst-1", OURS, THEIRS) is False
    assert await store.list_opt_outs() == ()
    # Cleared, it may be recorded again, afresh.
    again = dataclasses.replace(first, source="inbound", created_at=at(9))
    await store.record_opt_out(again)
    assert await store.list_opt_outs() == (again,)


async def test_clear_touches_only_its_own_key(store: Store) -> None:
    kept = [
        opt_out(installation="inst-2"),
        opt_out(from_="+15550000002"),
        opt_out(to="+15550000008"),
    ]
    for record in (opt_out(), *kept):
        await store.record_opt_out(record)
    assert await store.clear_opt_out("inst-1", OURS, THEIRS) is True
    assert set(await store.list_opt_outs()) == set(kept)


async def test_list_filters_and_orders_newest_first(store: Store) -> None:
    records = [
        opt_out(installation="inst-1", org="org-1", to="+15550000011", created=1),
        opt_out(installation="inst-1", org="org-1", to="+15550000012", created=3),
        opt_out(installation="inst-2", org="org-2", to="+15550000011", created=2),
        opt_out(installation="inst-3", org="org-3", from_="+15550000003", created=4),
    ]
    for record in records:
        await store.record_opt_out(record)
    a, b, c, d = records

    assert await store.list_opt_outs() == (d, b, c, a)
    assert await store.list_opt_outs(org_ids=frozenset({"org-1", "org-3"})) == (d, b, a)
    assert await store.list_opt_outs(org_ids=frozenset()) == ()
    assert await store.list_opt_outs(installation_id="inst-1") == (b, a)
    assert await store.list_opt_outs(from_number="+15550000003") == (d,)
    assert await store.list_opt_outs(to_number="+15550000011") == (c, a)
    assert await store.list_opt_outs(org_ids=frozenset({"org-2"}), to_number="+15550000011") == (c,)
    assert await store.list_opt_outs(installation_id="inst-1", to_number="+15550000099") == ()
    assert await store.list_opt_outs(limit=2) == (d, b)


async def test_pages_after_the_last_one_even_when_times_tie(store: Store) -> None:
    # Five at one time and two later: the ties are ordered by installation, from, to (descending).
    records = [
        opt_out(installation=f"inst-{n % 2}", to=f"+1555000001{n}", created=7) for n in range(5)
    ] + [opt_out(to="+15550000020", created=8), opt_out(to="+15550000021", created=1)]
    for record in records:
        await store.record_opt_out(record)
    everything = await store.list_opt_outs()
    assert len(everything) == len(records) and set(everything) == set(records)
    keys = [(r.created_at, r.installation_id, r.from_number, r.to_number) for r in everything]
    assert keys == sorted(keys, reverse=True)

    paged: list[OptOutRecord] = []
    after = None
    while True:
        page = await store.list_opt_outs(after=after, limit=2)
        paged.extend(page)
        if len(page) < 2:
            break
        last = page[-1]
        after = (last.created_at, last.installation_id, last.from_number, last.to_number)
    assert paged == list(everything)


# ---------------------------------------------------------------------------------------------
# the ingest rule


async def test_an_opted_out_event_records_one_and_an_opted_in_event_clears_it(
    store: Store,
) -> None:
    out = stop(received=3)
    assert await ingest(store, out) == 1
    assert await store.list_opt_outs() == (inbound(out),)
    (record,) = await store.list_opt_outs()
    assert (record.from_number, record.to_number, record.source) == (OURS, THEIRS, "inbound")

    # A second STOP keeps the first one's time.
    assert await ingest(store, stop(received=9)) == 1
    assert await store.list_opt_outs() == (inbound(out),)

    assert await ingest(store, stop(IN, received=12)) == 1
    assert await store.list_opt_outs() == ()


async def test_an_opted_in_event_clears_an_opt_out_a_provider_error_recorded(
    store: Store,
) -> None:
    await store.record_opt_out(opt_out(source="provider"))
    await ingest(store, stop(IN))
    assert await store.list_opt_outs() == ()


async def test_events_of_one_request_apply_in_order(store: Store) -> None:
    other = "+15550000007"
    last = stop(received=3)
    await ingest(
        store,
        stop(received=1),
        stop(IN, received=2),
        last,  # out, in, out: opted out since the last one
        stop(recipient=other, received=1),
        stop(IN, recipient=other, received=2),
        stop(recipient=other, received=4),
        stop(IN, recipient=other, received=5),  # out, in, out, in: opted in
    )
    # Not the first STOP's time: the opt-in between ended that opt-out.
    assert await store.list_opt_outs() == (inbound(last),)


async def test_other_event_types_and_events_of_no_installation_change_nothing(
    store: Store,
) -> None:
    await store.record_opt_out(opt_out())
    routed = [
        event(type=t, from_number=THEIRS, to_number=OURS)
        for t in InboundEventType
        if t not in (OUT, IN)
    ]
    nobody = [stop(installation_id="", org_id=""), stop(IN, installation_id="", org_id="")]
    assert await ingest(store, *routed, *nobody) == len(routed) + 2
    assert await store.list_opt_outs() == (opt_out(),)


async def test_a_duplicate_event_changes_nothing(store: Store) -> None:
    out = stop(key="inst-1|stop|1")
    assert await ingest(store, out) == 1
    assert await store.clear_opt_out("inst-1", OURS, THEIRS) is True
    # The provider retries the STOP an operator has since cleared: a duplicate, not recorded.
    assert await ingest(store, dataclasses.replace(out, received_at=at(60))) == 0
    assert await store.list_opt_outs() == ()
    await store.record_opt_out(opt_out())
    start = stop(IN, key="inst-1|start|1")
    assert await ingest(store, start, start) == 1  # the second is a duplicate of the first
    assert await store.list_opt_outs() == ()


async def test_a_failed_ingest_records_no_opt_out(store: Store) -> None:
    request = webhook()
    first = held("P-held")
    clash = dataclasses.replace(held("P-other"), id=first.id)  # the second insert fails
    out = stop(request=request)
    with pytest.raises(Conflict):
        await store.ingest(request, [out], held=[first, clash])
    assert await store.list_opt_outs() == ()
    # The same ingest, corrected, records it.
    await store.ingest(request, [out], held=[first])
    assert await store.list_opt_outs() == (inbound(out),)


async def test_a_replay_applies_the_rule_too(store: Store) -> None:
    request = webhook(outcome=WebhookOutcome.UNROUTABLE)
    await store.ingest(request, [])
    out = stop(request=request, received=2)
    replayed = await store.mark_replayed(
        request.id, outcome=WebhookOutcome.MATCHED, reason="", events=[out]
    )
    assert len(replayed.events) == 1
    assert await store.list_opt_outs() == (inbound(out),)
    again = await store.mark_replayed(
        request.id, outcome=WebhookOutcome.MATCHED, reason="", events=[stop(IN, request=request)]
    )
    assert len(again.events) == 1
    assert await store.list_opt_outs() == ()


async def test_concurrent_ingests_record_each_opt_out(store: Store) -> None:
    # PostgreSQL runs concurrent ingests as one batch transaction: each still records its own.
    recipients = [f"+1555000{n:04d}" for n in range(20)]
    counts = await asyncio.gather(
        *(ingest(store, stop(recipient=r, received=n)) for n, r in enumerate(recipients))
    )
    assert counts == [1] * len(recipients)
    listed = await store.list_opt_outs()
    assert [r.to_number for r in listed] == list(reversed(recipients))
