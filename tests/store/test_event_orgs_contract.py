"""The event filter's ``orgs`` (what a token scoped to organisations may see), in every store:
reads and durable-consumer leases return only those organisations' events."""

from __future__ import annotations

from test_inbound_contract import event, lease, webhook

from server.store import EventFilter, Store

ORGS = ("org-1", "org-2", "org-3", "org-1", "org-2", "org-3")


async def test_read_events_keeps_only_the_filters_orgs(store: Store) -> None:
    request = webhook()
    stored = (await store.ingest(request, [event(request, org_id=org) for org in ORGS])).events
    for f in (
        EventFilter(orgs=frozenset({"org-1", "org-3"})),
        EventFilter(orgs=frozenset({"org-2"})),
        EventFilter(orgs=frozenset({"org-9"})),
        EventFilter(org_id="org-1", orgs=frozenset({"org-1", "org-2"})),
        EventFilter(org_id="org-1", orgs=frozenset({"org-2"})),
    ):
        expected = [e.cursor for e in stored if f.matches(e)]
        assert [e.cursor for e in await store.read_events(0, filter=f)] == expected
    two = EventFilter(orgs=frozenset({"org-1", "org-3"}))
    assert [e.org_id for e in await store.read_events(0, filter=two)] == ["org-1", "org-3"] * 2
    assert [e.org_id for e in await store.read_events(0, filter=two, limit=3)] == [
        "org-1",
        "org-3",
        "org-1",
    ]


async def test_a_consumer_with_orgs_leases_only_their_events(store: Store) -> None:
    request = webhook()
    stored = (await store.ingest(request, [event(request, org_id=org) for org in ORGS])).events
    scoped = EventFilter(orgs=frozenset({"org-2"}))
    leased = await lease(store, "orgs=org-2 prod", "a", filter=scoped, start_after=0)
    assert leased == [e.cursor for e in stored if e.org_id == "org-2"]
