"""What only the PostgreSQL store does: migrations under an advisory lock, cursors in commit order
across replicas, NOTIFY/LISTEN wake-ups, races between replicas, pool size, errors, U+0000.

The contract every store keeps is tested in test_store_contract.py and test_inbound_contract.py
(on PostgreSQL too); these tests use the real server through ``postgres_dsn`` (the session's
database, emptied) or ``fresh_postgres_dsn`` (a database of the test's own, not migrated).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from server.store import (
    Conflict,
    EventFilter,
    InboundEventType,
    IngestOutcome,
    MediaHold,
    MessageKind,
    MessageRecord,
    MessageState,
    MigrationError,
    NewEvent,
    PostgresStore,
    StoreClosed,
    StoreError,
    WebhookOutcome,
    WebhookRequestRecord,
)
from server.store._migrations import load_migrations
from server.store.postgres import EVENTS_CHANNEL, MIGRATION_LOCK

pytestmark = pytest.mark.postgres

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def webhook() -> WebhookRequestRecord:
    return WebhookRequestRecord(
        id=f"req-{next(_ids)}",
        received_at=T0,
        integration_id="acme",
        installation_id="inst-1",
        method="POST",
        path="/webhooks/acme/…",
        query="",
        headers=(("Content-Type", "application/json"),),
        body=b"{}",
        content_type="application/json",
        outcome=WebhookOutcome.MATCHED,
        reason="",
    )


def event(request: WebhookRequestRecord, *, text: str = "hi", key: str | None = None) -> NewEvent:
    return NewEvent(
        type=InboundEventType.MESSAGE,
        org_id="org-1",
        installation_id="inst-1",
        integration_id="acme",
        users=("101",),
        from_number="+15550000009",
        to_number="+15550000001",
        text=text,
        media_urls=(),
        provider_message_id=f"P{next(_ids)}",
        message_id="",
        status="received",
        error="",
        metadata={"k\x00": "v\x00"},
        received_at=T0,
        request_id=request.id,
        dedupe_key=key,
    )


def message(*, key: str | None = None, text: str = "hi") -> MessageRecord:
    return MessageRecord(
        id=f"msg-{next(_ids)}",
        org_id="org-1",
        installation_id="inst-1",
        integration_id="acme",
        kind=MessageKind.SMS,
        from_number="+15550000001",
        to_number="+15550000002",
        text=text,
        media_url=None,
        state=MessageState.PENDING,
        provider_message_id=None,
        provider_status=None,
        attempts=0,
        error=None,
        metadata={},
        idempotency_key=key,
        request_fingerprint=None,
        reply_json=None,
        created_at=T0,
        updated_at=T0,
    )


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``check()`` holds (bounded, so a broken promise fails instead of hanging)."""
    for _ in range(1000):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
async def sql(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the same database, for what the store does not expose."""
    conn = await asyncpg.connect(postgres_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def observer(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection that only looks (never inside a transaction: pg_stat_activity is read once
    per transaction, so a connection in one would not see backends that came later)."""
    conn = await asyncpg.connect(postgres_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def waiting_pids(conn: asyncpg.Connection) -> list[int]:
    """Backends of this database waiting for a lock (``conn`` not in a transaction)."""
    rows = await conn.fetch(
        "SELECT DISTINCT l.pid FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE NOT l.granted AND a.datname = current_database()"
    )
    return [row[0] for row in rows]


# ---------------------------------------------------------------------------------------------
# Migrations


async def test_replicas_opening_together_migrate_once(fresh_postgres_dsn: str) -> None:
    stores = [PostgresStore(fresh_postgres_dsn, min_size=1, max_size=2) for _ in range(5)]
    await asyncio.gather(*(store.start() for store in stores))
    try:
        conn = await asyncpg.connect(fresh_postgres_dsn)
        try:
            rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        finally:
            await conn.close()
        expected = load_migrations(dialect="postgres")
        assert sorted(tuple(row) for row in rows) == [
            (m.version, m.name, m.checksum) for m in expected
        ]
        # Every replica works on the one schema.
        first = await stores[0].put_integration("acme", "{}")
        assert await stores[4].get_integration("acme") == first
    finally:
        for store in stores:
            await store.aclose()


async def test_open_waits_for_a_replica_that_is_migrating(fresh_postgres_dsn: str) -> None:
    holder = await asyncpg.connect(fresh_postgres_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        store = PostgresStore(fresh_postgres_dsn, min_size=1, max_size=1)
        opening = asyncio.create_task(store.start())

        async def blocked() -> bool:
            return bool(await waiting_pids(holder))

        await eventually(blocked, "open() waits for the migration lock")
        assert not opening.done()
        assert await holder.fetchval("SELECT to_regclass('schema_migrations')") is None
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await opening
        try:
            assert await holder.fetchval("SELECT COUNT(*) FROM schema_migrations") == len(
                load_migrations(dialect="postgres")
            )
            # The store let go of the lock once done: it can be taken at once.
            assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK)
        finally:
            await store.aclose()
    finally:
        await holder.close()


async def test_a_database_newer_than_the_program_is_refused(fresh_postgres_dsn: str) -> None:
    async with PostgresStore(fresh_postgres_dsn, min_size=1, max_size=1):
        pass
    conn = await asyncpg.connect(fresh_postgres_dsn)
    try:
        await conn.execute(
            "INSERT INTO schema_migrations VALUES (999, 'future', 'x', now())",
        )
    finally:
        await conn.close()
    store = PostgresStore(fresh_postgres_dsn, min_size=1, max_size=1)
    with pytest.raises(MigrationError, match="newer"):
        await store.start()
    with pytest.raises(StoreError):  # not left half open
        await store.get_integration("acme")


# ---------------------------------------------------------------------------------------------
# Cursors in commit order, and the wake-up


async def test_a_follower_sees_every_cursor_in_order_while_two_replicas_append(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """With cursors from a sequence, a follower could see N+1 committed before N and then skip
    N; here it must read every cursor, each batch continuing exactly after the last one."""
    a, b = replicas
    total = 300
    done = asyncio.Event()

    async def append(store: PostgresStore, count: int) -> None:
        async def one() -> None:
            request = webhook()
            await store.ingest(request, [event(request)])

        await asyncio.gather(*(one() for _ in range(count)))

    seen: list[int] = []

    async def follow() -> None:
        cursor = 0
        while len(seen) < total:
            batch = await a.read_events(cursor, limit=50)
            for record in batch:
                assert record.cursor == cursor + 1, f"gap after {cursor}: got {record.cursor}"
                cursor = record.cursor
                seen.append(cursor)
            if not batch:
                if done.is_set() and await a.latest_cursor() == cursor:
                    break
                await asyncio.sleep(0)

    follower = asyncio.create_task(follow())
    await asyncio.gather(append(a, total // 2), append(b, total // 2))
    done.set()
    await follower
    assert seen == list(range(1, total + 1))
    assert await b.latest_cursor() == total


async def test_an_append_waiting_for_the_cursor_is_invisible_until_it_commits(
    replicas: tuple[PostgresStore, PostgresStore],
    sql: asyncpg.Connection,
    observer: asyncpg.Connection,
) -> None:
    a, b = replicas
    request = webhook()
    await a.ingest(request, [event(request)])
    # Another transaction holds the cursor row (as an append about to commit would).
    async with sql.transaction():
        await sql.execute("SELECT last FROM event_cursor FOR UPDATE")
        second = webhook()
        appending = asyncio.create_task(b.ingest(second, [event(second)]))

        async def blocked() -> bool:
            return bool(await waiting_pids(observer))

        await eventually(blocked, "the append waits for the cursor row")
        assert await a.latest_cursor() == 1
        assert await a.read_events(0) != () and len(await a.read_events(1)) == 0
        # Its request row is already written, but not visible either: one transaction.
        assert await a.get_webhook_request(second.id) is None
    outcome = await appending
    assert [e.cursor for e in outcome.events] == [2]
    assert [e.cursor for e in await a.read_events(1)] == [2]


async def test_listen_events_wakes_on_an_append_by_another_replica(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    woken = asyncio.Event()
    listener = await a.listen_events(woken.set)
    try:
        request = webhook()
        await b.ingest(request, [event(request)])
        await asyncio.wait_for(woken.wait(), 30)
    finally:
        await listener.aclose()


async def test_the_notification_carries_the_latest_cursor(
    replicas: tuple[PostgresStore, PostgresStore], sql: asyncpg.Connection
) -> None:
    a, _ = replicas
    payloads: asyncio.Queue[str] = asyncio.Queue()
    await sql.add_listener(EVENTS_CHANNEL, lambda *args: payloads.put_nowait(args[3]))
    request = webhook()
    await a.ingest(request, [event(request), event(request)])
    assert await asyncio.wait_for(payloads.get(), 30) == "2"
    # A duplicate-only ingest appends nothing and notifies nothing; the next append does.
    keyed = webhook()
    await a.ingest(keyed, [event(keyed, key="k")])
    assert await asyncio.wait_for(payloads.get(), 30) == "3"
    again = webhook()
    assert (await a.ingest(again, [event(again, key="k")])).duplicates == 1
    last = webhook()
    await a.ingest(last, [event(last)])
    assert await asyncio.wait_for(payloads.get(), 30) == "4"


async def test_the_listener_reconnects_and_wakes_after_losing_its_connection(
    replicas: tuple[PostgresStore, PostgresStore], sql: asyncpg.Connection
) -> None:
    a, b = replicas
    wakes: asyncio.Queue[None] = asyncio.Queue()
    await a.listen_events(lambda: wakes.put_nowait(None))  # ended by a.aclose()

    async def listener_pids() -> list[int]:  # LISTEN, then its health check
        rows = await sql.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')"
        )
        return [row[0] for row in rows]

    (pid,) = await listener_pids()
    await sql.execute("SELECT pg_terminate_backend($1)", pid)
    # Once listening again it calls back at once: notifications meanwhile are lost.
    await asyncio.wait_for(wakes.get(), 30)

    async def listening_again() -> bool:
        return len(await listener_pids()) == 1

    await eventually(listening_again, "the listener connects again")
    request = webhook()
    await b.ingest(request, [event(request)])
    await asyncio.wait_for(wakes.get(), 30)


async def test_closing_the_store_ends_its_listeners(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn, min_size=1, max_size=1)
    await store.start()
    await store.listen_events(lambda: None)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        query = (
            "SELECT COUNT(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')"
        )
        assert await conn.fetchval(query) == 1
        await store.aclose()

        async def gone() -> bool:
            return bool(await conn.fetchval(query) == 0)

        await eventually(gone, "the listening connection is closed")
    finally:
        await conn.close()


async def test_concurrent_ingests_share_transactions_but_not_their_failures(
    postgres_dsn: str,
) -> None:
    async with PostgresStore(postgres_dsn, min_size=1, max_size=2) as store:
        taken = webhook()
        await store.ingest(taken, [event(taken)])
        requests = [webhook() for _ in range(30)]
        requests[17] = taken  # its id is in use: only this ingest may fail
        results = await asyncio.gather(
            *(store.ingest(r, [event(r, key=f"key-{n % 25}")]) for n, r in enumerate(requests)),
            return_exceptions=True,
        )
        assert isinstance(results[17], Conflict)
        others = [r for n, r in enumerate(results) if n != 17]
        assert all(isinstance(r, IngestOutcome) for r in others)
        outcomes = [r for r in others if isinstance(r, IngestOutcome)]
        # Keys 0-4 came twice (n and n + 25), key 17 once, with the failed ingest: rolled back.
        assert sum(o.duplicates for o in outcomes) == 5
        appended = [e.cursor for o in outcomes for e in o.events]
        assert sorted(appended) == list(range(2, 2 + 24))
        assert [e.cursor for e in await store.read_events(0)] == list(range(1, 26))
        assert await store.get_webhook_request(requests[3].id) is not None


def media_hold(hold_id: str, *, key: str | None = None) -> MediaHold:
    request = webhook()
    return MediaHold(
        id=hold_id,
        event=event(request, key=key),
        progress=(),
        held_at=T0,
        release_by=T0 + timedelta(minutes=1),
        next_attempt_at=T0,
    )


async def test_concurrent_ingests_of_media_holds_share_transactions_but_not_their_failures(
    postgres_dsn: str,
) -> None:
    async with PostgresStore(postgres_dsn, min_size=1, max_size=2) as store:
        await store.ingest(webhook(), [], media_holds=[media_hold("h-taken")])
        holds = [media_hold(f"h-{n}", key=f"mk-{n % 15}") for n in range(20)]
        holds[7] = dataclasses.replace(holds[7], id="h-taken")  # only this ingest may fail
        results = await asyncio.gather(
            *(store.ingest(webhook(), [], media_holds=[h]) for h in holds),
            return_exceptions=True,
        )
        assert isinstance(results[7], Conflict)
        outcomes = [r for n, r in enumerate(results) if n != 7]
        assert all(isinstance(r, IngestOutcome) for r in outcomes)
        # Keys 0-4 came twice (n and n + 15): the later ones are duplicates.
        assert [r.duplicates for r in outcomes if isinstance(r, IngestOutcome)] == [0] * 14 + [
            1
        ] * 5
        due = await store.due_media_holds(T0, limit=100)
        assert sorted(h.id for h in due) == sorted(
            ["h-taken", *(f"h-{n}" for n in range(15) if n != 7)]
        )
        # The failed ingest's key was rolled back with it.
        late = webhook()
        assert (await store.ingest(late, [event(late, key="mk-7")])).duplicates == 0


async def test_replicas_lease_a_media_hold_once_and_its_release_wakes_the_other(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    await a.ingest(webhook(), [], media_holds=[media_hold("h1", key="mk")])
    leases = await asyncio.gather(
        *(
            (a, b)[n % 2].lease_media_hold(
                "h1", owner=f"w{n}", lease_until=T0 + timedelta(seconds=30), now=T0
            )
            for n in range(10)
        )
    )
    (leased,) = [(n, lease) for n, lease in enumerate(leases) if lease is not None]
    owner = leased[1].lease_owner
    assert owner == f"w{leased[0]}"
    releasing, other = (a, b)[leased[0] % 2], (a, b)[(leased[0] + 1) % 2]
    woken = asyncio.Event()
    listener = await other.listen_events(woken.set)
    try:
        released = await releasing.release_media_hold("h1", owner=owner, media=())
        await asyncio.wait_for(woken.wait(), 30)
    finally:
        await listener.aclose()
    assert released is not None and released.cursor == 1
    assert await other.read_events(0) == (released,)
    assert await other.release_media_hold("h1", owner=owner, media=()) is None


async def test_close_finishes_the_ingests_already_submitted(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn, min_size=1, max_size=1)
    await store.start()
    requests = [webhook() for _ in range(40)]
    tasks = [asyncio.create_task(store.ingest(r, [event(r)])) for r in requests]
    await asyncio.sleep(0)  # every task has submitted its ingest
    await store.aclose()
    outcomes = await asyncio.gather(*tasks)
    assert sorted(e.cursor for o in outcomes for e in o.events) == list(range(1, 41))
    with pytest.raises(StoreClosed):
        await store.ingest(webhook(), [])


# ---------------------------------------------------------------------------------------------
# Races between replicas


async def test_replicas_claim_one_idempotency_key_once(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    records = [message(key="same") for _ in range(40)]
    results = await asyncio.gather(
        *(replicas[n % 2].claim_message(record) for n, record in enumerate(records))
    )
    winners = {stored.id for stored, created in results if created}
    assert len(winners) == 1
    assert {stored.id for stored, _ in results} == winners


async def test_replicas_count_versions_without_a_clash(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    records = await asyncio.gather(
        *(replicas[n % 2].put_integration("acme", f'{{"n": {n}}}') for n in range(30))
    )
    assert sorted(r.version for r in records) == list(range(1, 31))


async def test_subscribers_on_two_replicas_share_a_consumer_without_overlap(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    now = T0 + timedelta(days=1)
    await a.lease_events(
        "group", subscriber="s0", filter=EventFilter(), limit=1, lease_s=60, now=now
    )
    request = webhook()
    await a.ingest(request, [event(request) for _ in range(60)])
    handed: list[list[int]] = [[], [], [], []]

    async def subscriber(n: int) -> None:
        store = (a, b)[n % 2]
        while batch := await store.lease_events(
            "group", subscriber=f"s{n}", filter=EventFilter(), limit=3, lease_s=60, now=now
        ):
            handed[n].extend(e.cursor for e in batch)

    await asyncio.gather(*(subscriber(n) for n in range(4)))
    everything = [cursor for cursors in handed for cursor in cursors]
    assert sorted(everything) == list(range(1, 61))  # each event to exactly one subscriber
    assert sum(1 for cursors in handed if cursors) >= 2


async def test_replicas_release_each_held_receipt_once(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    from server.store import HeldReceipt

    request = webhook()
    receipts = [
        HeldReceipt(
            id=f"held-{n}",
            integration_id="acme",
            provider_message_id=f"P-held-{n}",
            event=event(request, key=f"dlr-{n}"),
            held_at=T0,
            release_at=T0 + timedelta(seconds=n % 5),
        )
        for n in range(40)
    ]
    await replicas[0].ingest(request, [], held=receipts)
    taken = await asyncio.gather(
        *(replicas[n % 2].release_held(T0 + timedelta(minutes=1)) for n in range(8))
    )
    ids = [receipt.id for batch in taken for receipt in batch]
    assert sorted(ids) == sorted(r.id for r in receipts)


# ---------------------------------------------------------------------------------------------
# Values, errors, pool


async def test_u0000_in_plain_text_is_stored_as_u_fffd_and_maps_keep_it(postgres_dsn: str) -> None:
    async with PostgresStore(postgres_dsn, min_size=1, max_size=2) as store:
        sent, _ = await store.claim_message(message(text="a\x00b"))
        stored = await store.get_message(sent.id)
        assert stored is not None and stored.text == "a\ufffdb"
        request = webhook()
        outcome = await store.ingest(request, [event(request, text="x\x00y")])
        (record,) = await store.read_events(0)
        assert record.cursor == outcome.events[0].cursor
        assert record.text == "x\ufffdy"
        assert dict(record.metadata) == {"k\x00": "v\x00"}  # JSON text escapes it


async def test_ids_sort_by_code_point_whatever_the_locale(postgres_dsn: str) -> None:
    ids = ["b", "B", "a", "_z", "é", "Z", "a-1", "a1"]
    async with PostgresStore(postgres_dsn, min_size=1, max_size=2) as store:
        for integration_id in ids:
            await store.put_integration(integration_id, "{}")
        assert [r.id for r in await store.list_integrations()] == sorted(ids)


async def test_a_driver_error_is_a_store_error(postgres_dsn: str) -> None:
    async with PostgresStore(postgres_dsn, min_size=1, max_size=1) as store:
        sent, _ = await store.claim_message(message())
        with pytest.raises(StoreError) as caught:
            await store.update_message(sent.id, provider_status=2**40)  # not an integer column
        assert isinstance(caught.value.__cause__, asyncpg.PostgresError)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_server_or_database_is_a_store_error(postgres_dsn: str) -> None:
    nowhere = PostgresStore(f"postgresql://postgres@127.0.0.1:{_closed_port()}/x")
    with pytest.raises(StoreError, match="cannot connect"):
        await nowhere.start()
    missing = PostgresStore(postgres_dsn.rsplit("/", 1)[0] + "/no_such_database_here")
    with pytest.raises(StoreError, match="cannot connect"):
        await missing.start()


async def test_a_lost_connection_fails_a_write_and_a_read_runs_again(
    postgres_dsn: str, sql: asyncpg.Connection, observer: asyncpg.Connection
) -> None:
    async with PostgresStore(postgres_dsn, min_size=2, max_size=2) as store:
        await sql.execute("BEGIN; LOCK TABLE integrations IN ACCESS EXCLUSIVE MODE")
        writing = asyncio.create_task(store.put_integration("acme", "{}"))
        reading = asyncio.create_task(store.get_integration("acme"))

        async def both_blocked() -> bool:
            return len(await waiting_pids(observer)) == 2

        await eventually(both_blocked, "a write and a read wait for the table lock")
        blocked = await waiting_pids(observer)
        for pid in blocked:
            await observer.execute("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(StoreError):
            await writing  # its commit may or may not have happened: never run twice

        async def read_again() -> bool:
            pids = await waiting_pids(observer)
            return len(pids) == 1 and pids[0] not in blocked

        await eventually(read_again, "the read waits again on a new connection")
        await sql.execute("COMMIT")
        assert await reading is None
        # The pool replaced the lost connections.
        record = await store.put_integration("acme", "{}")
        assert await store.get_integration("acme") == record


async def test_the_pool_keeps_to_its_maximum_size(
    postgres_dsn: str, sql: asyncpg.Connection
) -> None:
    async with PostgresStore(postgres_dsn, min_size=1, max_size=3) as store:
        await asyncio.gather(*(store.claim_message(message()) for _ in range(50)))
        others = await sql.fetchval(
            "SELECT COUNT(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert 1 <= others <= 3


def test_pool_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="min_size"):
        PostgresStore("postgresql://x/y", min_size=5, max_size=2)
    with pytest.raises(ValueError, match="max_size"):
        PostgresStore("postgresql://x/y", max_size=0)


async def test_exclusive_holds_across_replicas(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    order: list[str] = []

    async def hold(store: PostgresStore, name: str) -> None:
        async with store.exclusive("oauth-renewal:inst-1"):
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(hold(a, "a"), hold(b, "b"), hold(a, "a2"), hold(b, "b2"))
    # Never two inside at once: every "in" is followed by its own "out".
    for i in range(0, len(order), 2):
        assert order[i].removesuffix(" in") == order[i + 1].removesuffix(" out")
