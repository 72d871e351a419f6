"""The store's listings and filtered event reads are served by an index, on both backends: each
statement a call runs is captured and explained (``EXPLAIN QUERY PLAN`` on SQLite; ``EXPLAIN`` on
PostgreSQL, with sequential scans and sorts priced out, so that a plan that still has one has no
index to serve it). No list query scans its table or sorts it: a page costs the same however
large the store (issue 20).

Pages read by key stay complete while rows are added between them: every row once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from test_inbound_contract import at, event, webhook
from test_queue_contract import new_message, queued
from test_store_contract import installation

from server.store import (
    EventFilter,
    InstallationRecord,
    MessageRecord,
    MessageState,
    PostgresStore,
    SqliteStore,
    Store,
    WebhookOutcome,
)
from server.store._keyset_sql import EventsPurgeStep, Statement, read_events
from server.store.postgres._sql import DIALECT as POSTGRES_DIALECT
from server.store.postgres._sql import LIST_INTEGRATIONS as POSTGRES_LIST_INTEGRATIONS
from server.store.postgres._sql import PURGE_STATEMENTS as POSTGRES_PURGE
from server.store.postgres._sql import SELECTS as POSTGRES_SELECTS
from server.store.sqlite._sql import DIALECT as SQLITE_DIALECT
from server.store.sqlite._sql import LIST_INTEGRATIONS as SQLITE_LIST_INTEGRATIONS
from server.store.sqlite._sql import PURGE_STATEMENTS as SQLITE_PURGE
from server.store.sqlite._sql import SELECTS as SQLITE_SELECTS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Plans:
    """The statements ``store`` runs through its listings, and their plans."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.statements: list[Statement] = []

    async def of(self, call: Callable[[], Awaitable[Any]]) -> str:
        """The plan of the one statement ``call`` runs, as one text."""
        self.statements.clear()
        await call()
        assert len(self.statements) == 1
        return await explain(self.store, self.statements[0])


async def explain(store: Store, statement: Statement) -> str:
    if isinstance(store, SqliteStore):
        rows = await store._read(
            lambda conn: conn.execute(
                "EXPLAIN QUERY PLAN " + statement.sql, statement.params
            ).fetchall()
        )
        return "\n".join(str(row[3]) for row in rows)
    assert isinstance(store, PostgresStore)

    async def fn(conn: Any) -> str:
        await conn.execute("SET enable_seqscan = off; SET enable_sort = off")
        try:
            rows = await conn.fetch("EXPLAIN " + statement.sql, *statement.params)
        finally:
            await conn.execute("RESET enable_seqscan; RESET enable_sort")
        return "\n".join(str(row[0]) for row in rows)

    return str(await store._read(fn))


@pytest.fixture
async def plans(store: Store, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Plans]:
    captured = Plans(store)
    fetch = store._fetch  # type: ignore[attr-defined]

    async def recording(statement: Statement, convert: Any) -> Any:
        captured.statements.append(statement)
        return await fetch(statement, convert)

    monkeypatch.setattr(store, "_fetch", recording)
    yield captured


# A PostgreSQL sort node (not the "Sort Key" of a Merge Append, which sorts nothing).
_SORT = re.compile(r"^\s*(->\s+)?(Incremental )?Sort\s+\(cost", re.MULTILINE)


def assert_served(plan: str, *indexes: str) -> None:
    """``plan`` reads through one of ``indexes``, scans no table and sorts nothing."""
    assert any(index in plan for index in indexes), plan
    # SQLite: a full scan is "SCAN <table>" without an index; a sort is a temp b-tree.
    # PostgreSQL: "Seq Scan", "Sort" (and "Incremental Sort").
    for line in plan.splitlines():
        assert not (line.startswith("SCAN ") and " INDEX " not in line), plan
    assert "TEMP B-TREE" not in plan, plan
    assert "Seq Scan" not in plan and not _SORT.search(plan), plan


KEY = (T0, "inst-x")
# More organisations than the store merges ranges for: it filters the listing's own order.
MANY_ORGS = frozenset(f"org-{n}" for n in range(40))


@pytest.mark.parametrize(
    ("filters", "indexes"),
    [
        ({}, ("installations_by_created",)),
        ({"after": KEY}, ("installations_by_created",)),
        ({"org_id": "org-1", "after": KEY}, ("installations_by_org",)),
        ({"integration_id": "acme", "after": KEY}, ("installations_by_integration",)),
        (
            {"org_id": "org-1", "integration_id": "acme", "after": KEY},
            ("installations_by_org", "installations_by_integration"),
        ),
        ({"org_ids": frozenset({"org-1", "org-2"}), "after": KEY}, ("installations_by_org",)),
        ({"org_ids": MANY_ORGS, "after": KEY}, ("installations_by_created",)),
    ],
)
async def test_a_page_of_installations_is_a_range_of_an_index(
    store: Store, plans: Plans, filters: dict[str, Any], indexes: tuple[str, ...]
) -> None:
    for n in range(3):
        await store.create_installation(
            installation(org_id=f"org-{n}", numbers=(f"+1555000{n:04d}",), created=n)
        )
    plan = await plans.of(lambda: store.list_installations(limit=101, **filters))
    assert_served(plan, *indexes)


@pytest.mark.parametrize(
    ("filters", "indexes"),
    [
        ({}, ("messages_by_created",)),
        ({"after": KEY}, ("messages_by_created",)),
        ({"installation_id": "inst-1", "after": KEY}, ("messages_by_installation",)),
        (
            {"org_ids": frozenset({"org-1"}), "after": KEY},
            ("messages_by_org",),
        ),
        ({"org_ids": MANY_ORGS, "after": KEY}, ("messages_by_created",)),
        (
            {"states": frozenset({MessageState.FAILED}), "created_before": T0, "after": KEY},
            ("messages_by_created",),
        ),
    ],
)
async def test_a_page_of_messages_is_a_range_of_an_index(
    store: Store, plans: Plans, filters: dict[str, Any], indexes: tuple[str, ...]
) -> None:
    plan = await plans.of(lambda: store.list_messages(limit=101, **filters))
    assert_served(plan, *indexes)


@pytest.mark.parametrize(
    ("outcomes", "indexes"),
    [
        (frozenset(), ("webhook_requests_by_received",)),
        (frozenset({WebhookOutcome.UNMATCHED}), ("webhook_requests_by_outcome",)),
        (
            frozenset(
                {
                    WebhookOutcome.UNMATCHED,
                    WebhookOutcome.UNROUTABLE,
                    WebhookOutcome.UNAUTHENTICATED,
                }
            ),
            ("webhook_requests_by_outcome",),
        ),
    ],
)
async def test_a_page_of_webhook_requests_is_a_range_of_an_index(
    store: Store, plans: Plans, outcomes: frozenset[WebhookOutcome], indexes: tuple[str, ...]
) -> None:
    plan = await plans.of(
        lambda: store.list_webhook_requests(
            outcomes=outcomes, integration_id="acme", after=KEY, limit=101
        )
    )
    assert_served(plan, *indexes)


@pytest.mark.parametrize(
    ("event_filter", "index"),
    [
        (EventFilter(org_id="org-1", types=frozenset({"message", "mms"})), "events_by_org_type"),
        (EventFilter(types=frozenset({"messageFailed"})), "events_by_type"),
        (
            EventFilter(
                integration_id="acme",
                types=frozenset({"message", "messageDelivered", "messageFailed"}),
                orgs=frozenset({"org-1", "org-2"}),
            ),
            "events_by_org_type",
        ),
        (EventFilter(types=frozenset({"message", "mms"}), orgs=MANY_ORGS), "events_by_type"),
    ],
)
async def test_a_filtered_event_read_seeks_each_type_instead_of_walking_the_log(
    store: Store, plans: Plans, event_filter: EventFilter, index: str
) -> None:
    plan = await plans.of(lambda: store.read_events(1000, filter=event_filter, limit=500))
    assert index in plan, plan
    # Each type's range is read in cursor order and merged: nothing is sorted but what the
    # ranges give (SQLite merges the arms of the UNION ALL; PostgreSQL a Merge Append).
    assert "Seq Scan" not in plan and not _SORT.search(plan), plan
    if isinstance(store, SqliteStore):
        assert "MERGE" in plan or len(event_filter.types) == 1, plan
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan.replace("RIGHT", ""), plan
        assert all(" SCAN events" not in line for line in plan.splitlines()), plan


async def test_a_filtered_event_read_returns_what_the_filter_matches_in_cursor_order(
    store: Store,
) -> None:
    kinds = ["message", "messageDelivered", "mms", "messageFailed"]
    for n in range(40):
        request = webhook(received=n)
        await store.ingest(request, [event(request, type=kinds[n % 4], org_id=f"org-{n % 3}")])
    everything = await store.read_events(0, limit=1000)
    for wanted in (
        EventFilter(org_id="org-1", types=frozenset({"message", "mms"})),
        EventFilter(types=frozenset({"message", "mms"}), orgs=frozenset({"org-0", "org-2"})),
        EventFilter(types=frozenset({"messageFailed"}), orgs=frozenset()),
        EventFilter(org_id="org-1", types=frozenset({"mms"}), orgs=frozenset({"org-2"})),
        EventFilter(types=frozenset({"messageDelivered"}), integration_id="acme"),
    ):
        expected = [e.cursor for e in everything if wanted.matches(e)]
        got = [e.cursor for e in await store.read_events(0, filter=wanted, limit=1000)]
        assert got == expected, wanted
        if len(expected) > 4:
            after = await store.read_events(expected[1], filter=wanted, limit=2)
            assert [e.cursor for e in after] == expected[2:4]


# --- pages stay complete while rows are added -----------------------------------------------


async def test_installation_pages_list_every_installation_once_while_more_are_added(
    store: Store,
) -> None:
    present = [
        installation(org_id="org-1", numbers=(f"+1555000{n:04d}",), created=n) for n in range(10)
    ]
    for record in present:
        await store.create_installation(record)
    seen: list[InstallationRecord] = []
    after: tuple[datetime, str] | None = None
    added = 0
    while page := await store.list_installations(org_id="org-1", after=after, limit=3):
        seen.extend(page)
        after = (page[-1].created_at, page[-1].id)
        if added < 4:  # one older than every page (not listed) and one newer (listed once)
            await store.create_installation(
                installation(
                    org_id="org-1",
                    numbers=(f"+1555100{added:04d}",),
                    created=-1 - added if added % 2 else 100 + added,
                )
            )
            added += 1
    ids = [r.id for r in seen]
    assert len(ids) == len(set(ids))
    assert ids[:10] == [r.id for r in present]
    assert len(ids) == 12  # the two added after the key


async def test_message_pages_list_every_message_once_while_more_are_added(store: Store) -> None:
    present = [await queued(store, new_message(created=n), now=n) for n in range(9)]
    seen: list[MessageRecord] = []
    after: tuple[datetime, str] | None = None
    while page := await store.list_messages(after=after, limit=2):
        seen.extend(page)
        after = (page[-1].created_at, page[-1].id)
        # Newer than the key: a later listing's, never this one's (newest first).
        await queued(store, new_message(created=100 + len(seen)), now=100 + len(seen))
    assert [m.id for m in seen] == [m.id for m in reversed(present)]


# --- retention: the purge's bound is found a chunk at a time --------------------------------


async def test_a_chunk_of_the_messages_purge_is_one_range_of_their_creation_index(
    store: Store,
) -> None:
    statements = SQLITE_PURGE if isinstance(store, SqliteStore) else POSTGRES_PURGE
    dialect = SQLITE_DIALECT if isinstance(store, SqliteStore) else POSTGRES_DIALECT
    plan = await explain(store, Statement(statements["messages"], (dialect.time(T0), 1000)))
    assert "messages_by_created" in plan, plan
    assert "messages_by_age" not in plan, plan


async def test_each_step_of_an_event_purge_reads_one_chunk_of_the_log_head(store: Store) -> None:
    dialect = SQLITE_DIALECT if isinstance(store, SqliteStore) else POSTGRES_DIALECT
    step = EventsPurgeStep.of(dialect)
    head = Statement(step.head, (dialect.time(T0), 1000))
    plan = await explain(store, head)
    assert "TEMP B-TREE" not in plan and not _SORT.search(plan), plan
    assert "Seq Scan" not in plan, plan
    if isinstance(store, PostgresStore):
        assert "events_pkey" in plan, plan


async def test_events_are_purged_as_a_prefix_of_the_log_a_chunk_at_a_time(store: Store) -> None:
    received = [0, 1, 2, 3, 4, 1, 6, 7, 8, 9]  # the sixth came late: kept behind the fifth
    for n, seconds in enumerate(received):
        request = webhook(received=seconds)
        await store.ingest(request, [event(request, received=seconds, key=f"k{n}")])
    cursors = [e.cursor for e in await store.read_events(0, limit=100)]
    store._purge_chunk = 3  # type: ignore[attr-defined]

    counts = await store.purge(events_before=at(4))

    assert counts["events"] == 4
    assert [e.cursor for e in await store.read_events(0, limit=100)] == cursors[4:]
    assert (await store.purge(events_before=at(100)))["events"] == 6
    assert await store.read_events(0, limit=100) == ()
    assert (await store.purge(events_before=at(100)))["events"] == 0


async def test_a_page_of_integrations_is_a_range_of_the_primary_key(store: Store) -> None:
    if isinstance(store, SqliteStore):
        plan = await explain(store, Statement(SQLITE_LIST_INTEGRATIONS, ("acme", 101)))
        assert_served(plan, "USING PRIMARY KEY (id>?)")
    else:
        plan = await explain(store, Statement(POSTGRES_LIST_INTEGRATIONS, ("acme", 101)))
        assert_served(plan, "integrations_pkey")


async def test_a_consumer_claim_reads_each_type_up_to_the_latest_cursor_the_same_way(
    store: Store,
) -> None:
    # Store.claim_events reads after the consumer's frontier (PostgreSQL: up to the latest
    # committed cursor) through the same statement as read_events.
    dialect, selects = (
        (SQLITE_DIALECT, SQLITE_SELECTS)
        if isinstance(store, SqliteStore)
        else (POSTGRES_DIALECT, POSTGRES_SELECTS)
    )
    statement = read_events(
        dialect,
        selects.event,
        after_cursor=10,
        up_to=None if isinstance(store, SqliteStore) else 5000,
        event_filter=EventFilter(types=frozenset({"message", "messageFailed"})),
        limit=500,
    )
    plan = await explain(store, statement)
    # Each type's index range, or — PostgreSQL's choice when its statistics say the bounded
    # cursor range is short — that range of the primary key: either way no scan and no sort.
    assert "events_by_type" in plan or "events_pkey" in plan, plan
    assert "Seq Scan" not in plan and not _SORT.search(plan) and "TEMP B-TREE" not in plan, plan
