"""What only the SQLite store does: its file, pragmas, migrations and batching writer thread.

The behaviour every store shares is tested in tests/store through the ``store`` fixture.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.store import (
    Conflict,
    MigrationError,
    NewEvent,
    SqliteStore,
    StoreError,
    WebhookOutcome,
    WebhookRequestRecord,
)
from server.store._migrations import (
    Migration,
    _apply_one,
    apply_migrations,
    load_migrations,
    pending_migrations,
)
from server.store.sqlite._queue import _DUE


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "data")
    await store.start()
    try:
        yield store
    finally:
        await store.aclose()


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def recorded_versions(path: Path) -> list[tuple[int, str, int]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()


# ---------------------------------------------------------------------------------------------
# File and pragmas


async def test_open_creates_the_data_directory_and_a_wal_database(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "var"
    async with SqliteStore(directory) as store:
        assert store.database_path == directory / "msgbridge.sqlite3"
        assert store.database_path.is_file()
        mode = await store._read(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
        assert await store._read(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0]) == 1
    assert {"integrations", "installations", "installation_numbers", "messages"} <= tables(
        directory / "msgbridge.sqlite3"
    )


async def test_from_file_names_the_database_file(tmp_path: Path) -> None:
    async with SqliteStore.from_file(tmp_path / "var" / "gateway.db") as store:
        await store.put_integration("acme", "{}")
    assert (tmp_path / "var" / "gateway.db").is_file()
    async with SqliteStore(tmp_path / "var", filename="gateway.db") as store:
        assert await store.get_integration("acme") is not None


@pytest.mark.parametrize(("setting", "level"), [("NORMAL", 1), ("FULL", 2)])
async def test_synchronous_setting_reaches_every_connection(
    tmp_path: Path, setting: str, level: int
) -> None:
    async with SqliteStore(tmp_path, synchronous=setting) as store:
        read = await store._read(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        written = await store._write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    assert (read, written) == (level, level)


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path, synchronous="OFF")
    with pytest.raises(ValueError, match="readers"):
        SqliteStore(tmp_path, readers=0)


async def test_reader_connections_cannot_write(sqlite_store: SqliteStore) -> None:
    with pytest.raises(StoreError):
        await sqlite_store._read(lambda c: c.execute("DELETE FROM integrations"))


async def test_an_unusable_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open"):
        await SqliteStore(blocker / "data").start()


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "msgbridge.sqlite3").write_bytes(b"garbage " * 512)
    with pytest.raises(StoreError):
        await SqliteStore(tmp_path).start()


# ---------------------------------------------------------------------------------------------
# Migrations


def test_shipped_migrations_count_from_one() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"


async def test_migrations_are_recorded_once_and_reopening_applies_nothing(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path) as store:
        await store.put_integration("acme", "{}")
    database = tmp_path / "msgbridge.sqlite3"
    first = recorded_versions(database)
    assert [(v, n) for v, n, _ in first] == [(m.version, m.name) for m in load_migrations()]

    async with SqliteStore(tmp_path) as store:
        assert await store.get_integration("acme") is not None
    assert recorded_versions(database) == first  # same rows, same applied_at

    with closing(sqlite3.connect(database, isolation_level=None)) as conn:
        assert apply_migrations(conn, load_migrations()) == ()


def test_each_migration_is_its_own_transaction(tmp_path: Path) -> None:
    good = Migration(version=1, name="good", sql="CREATE TABLE t1 (x INTEGER);")
    bad = Migration(
        version=2,
        name="bad",
        sql="CREATE TABLE t2 (x INTEGER);\nINSERT INTO missing_table VALUES (1);",
    )
    database = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        with pytest.raises(MigrationError, match="0002_bad"):
            apply_migrations(conn, [good, bad])
        assert not conn.in_transaction
    finally:
        conn.close()
    assert "t1" in tables(database)
    assert "t2" not in tables(database)  # the failed migration left nothing behind
    assert [v for v, _, _ in recorded_versions(database)] == [1]

    fixed = Migration(version=2, name="bad", sql="CREATE TABLE t2 (x INTEGER);")
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        assert apply_migrations(conn, [good, fixed]) == (fixed,)
    finally:
        conn.close()
    assert {"t1", "t2"} <= tables(database)


async def test_a_later_migration_is_applied_to_an_existing_database(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path) as store:
        await store.put_integration("acme", '{"v": 1}')
    later = Migration(
        version=len(load_migrations()) + 1,
        name="audit",
        sql="""
        -- an append-only log
        CREATE TABLE audit_log (
            entry INTEGER PRIMARY KEY AUTOINCREMENT,
            org_id TEXT NOT NULL
        );
        """,
    )
    async with SqliteStore(tmp_path, migrations=(*load_migrations(), later)) as store:
        assert await store.get_integration("acme") is not None
        cursor = await store._write(
            lambda c: c.execute(
                "INSERT INTO audit_log (org_id) VALUES ('o') RETURNING entry"
            ).fetchone()[0]
        )
        assert cursor == 1
    assert recorded_versions(tmp_path / "msgbridge.sqlite3")[-1][:2] == (later.version, "audit")


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path):
        pass
    with closing(sqlite3.connect(tmp_path / "msgbridge.sqlite3")) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x', 0)")
        conn.commit()
    with pytest.raises(MigrationError, match="newer"):
        await SqliteStore(tmp_path).start()


async def test_two_stores_opening_one_new_database_at_once_migrate_it_once(
    tmp_path: Path,
) -> None:
    stores = [SqliteStore(tmp_path) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    try:
        records = await asyncio.gather(*(s.put_integration("acme", "{}") for s in stores))
        assert sorted(r.version for r in records) == [1, 2, 3, 4]
    finally:
        await asyncio.gather(*(s.aclose() for s in stores))
    versions = [v for v, _, _ in recorded_versions(tmp_path / "msgbridge.sqlite3")]
    assert versions == [m.version for m in load_migrations()]


def test_a_migration_applied_meanwhile_by_another_process_is_skipped(tmp_path: Path) -> None:
    migration = Migration(version=1, name="one", sql="CREATE TABLE t1 (x INTEGER);")
    first = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    second = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        assert apply_migrations(first, [migration]) == (migration,)
        # `second` read the list of applied versions before `first` applied it: its attempt
        # fails on the version's primary key before running the migration, and is skipped.
        assert _apply_one(second, migration) is False
        assert not second.in_transaction
    finally:
        first.close()
        second.close()
    assert [v for v, _, _ in recorded_versions(tmp_path / "db.sqlite3")] == [1]


def test_load_migrations_refuses_gaps_and_bad_names(tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("not a migration")
    assert [m.name for m in load_migrations(tmp_path)] == ["first"]

    (tmp_path / "0003_third.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="expected 0002"):
        load_migrations(tmp_path)
    (tmp_path / "0003_third.sql").unlink()

    (tmp_path / "2_Second.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


# ---------------------------------------------------------------------------------------------
# The writer thread


_INSERT = "INSERT INTO integrations (id, version, definition_json, created_at) VALUES (?, 1, '', 0)"


def _insert(value: str) -> Callable[[sqlite3.Connection], str]:
    def op(conn: sqlite3.Connection) -> str:
        conn.execute(_INSERT, (value,))
        return value

    return op


def _insert_then_fail(value: str) -> Callable[[sqlite3.Connection], str]:
    def op(conn: sqlite3.Connection) -> str:
        conn.execute(_INSERT, (value,))
        raise StoreError(f"refused {value}")

    return op


async def test_one_failing_write_in_a_batch_keeps_the_others(sqlite_store: SqliteStore) -> None:
    entered, gate = threading.Event(), threading.Event()
    seen: list[tuple[int, int]] = []

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(timeout=30)

    def look(conn: sqlite3.Connection) -> int:
        # What this batch wrote so far, and what another connection sees: nothing yet, because
        # the batch's writes are one transaction, committed once after the last of them.
        mine = conn.execute("SELECT COUNT(*) FROM integrations").fetchone()[0]
        with closing(sqlite3.connect(sqlite_store.database_path)) as other:
            theirs = other.execute("SELECT COUNT(*) FROM integrations").fetchone()[0]
        seen.append((mine, theirs))
        return 0

    held = asyncio.ensure_future(sqlite_store._write(hold))
    assert await asyncio.to_thread(entered.wait, 30)  # the writer thread is held in `hold`
    writes = [
        sqlite_store._write(_insert("a")),
        sqlite_store._write(_insert_then_fail("b")),
        sqlite_store._write(_insert("c")),
        sqlite_store._write(_insert("a")),  # its primary key is taken
        sqlite_store._write(look),
    ]
    tasks = [asyncio.ensure_future(w) for w in writes]
    await asyncio.sleep(0)  # every task has queued its write
    gate.set()
    await held
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert results[0] == "a" and results[2] == "c" and results[4] == 0
    assert isinstance(results[1], StoreError) and str(results[1]) == "refused b"
    assert isinstance(results[3], Conflict)
    assert isinstance(results[3].__cause__, sqlite3.IntegrityError)
    assert seen == [(2, 0)]
    stored = await sqlite_store._read(
        lambda c: [r[0] for r in c.execute("SELECT id FROM integrations ORDER BY id")]
    )
    assert stored == ["a", "c"]


async def test_a_single_failing_write_is_rolled_back(sqlite_store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="refused x"):
        await sqlite_store._write(_insert_then_fail("x"))
    count = await sqlite_store._read(
        lambda c: c.execute("SELECT COUNT(*) FROM integrations").fetchone()[0]
    )
    assert count == 0


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.start()
    pending = [asyncio.ensure_future(store.put_integration(f"i{n}", "{}")) for n in range(100)]
    await asyncio.sleep(0)
    await store.aclose()
    assert all(task.done() for task in pending)
    assert {(await task).version for task in pending} == {1}
    async with SqliteStore(tmp_path) as reopened:
        assert len(await reopened.list_integrations()) == 100


async def test_a_cancelled_caller_does_not_stop_the_writer(sqlite_store: SqliteStore) -> None:
    task = asyncio.ensure_future(sqlite_store.put_integration("acme", "{}"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = await sqlite_store.put_integration("acme", "{}")
    # The cancelled write may or may not have run before the cancel; it never ran twice.
    assert record.version in (1, 2)
    assert (await sqlite_store.get_integration("acme")) == record


# ---------------------------------------------------------------------------------------------
# The inbound path


def _inbound_request(request_id: str) -> WebhookRequestRecord:
    return WebhookRequestRecord(
        id=request_id,
        received_at=datetime(2025, 1, 1, tzinfo=UTC),
        integration_id="acme",
        installation_id=None,
        method="POST",
        path="/webhooks/acme",
        query="",
        headers=(),
        body=b"{}",
        content_type="application/json",
        outcome=WebhookOutcome.MATCHED,
        reason="",
    )


def _inbound_event(text: str, *, key: str | None, received: datetime | None = None) -> NewEvent:
    return NewEvent(
        type="message",
        org_id="org-1",
        installation_id="inst-1",
        integration_id="acme",
        users=(),
        from_number="+1",
        to_number="+2",
        text=text,
        media_urls=(),
        provider_message_id="",
        message_id="",
        status="",
        error="",
        metadata={},
        received_at=received or datetime(2025, 1, 1, tzinfo=UTC),
        request_id="r",
        dedupe_key=key,
    )


def _count(table: str) -> Callable[[sqlite3.Connection], int]:
    return lambda c: int(c.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


async def test_a_failing_event_insert_rolls_back_the_whole_ingest(
    sqlite_store: SqliteStore,
) -> None:
    # A trigger makes the database itself refuse the second event of the batch.
    await sqlite_store._write(
        lambda c: c.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.text = 'boom'"
            " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    )
    events = [_inbound_event("fine", key="k1"), _inbound_event("boom", key="k2")]
    with pytest.raises(StoreError, match="refused by the test"):
        await sqlite_store.ingest(_inbound_request("r1"), events)

    for table in ("webhook_requests", "events", "dedupe_keys"):
        assert await sqlite_store._read(_count(table)) == 0, table
    assert await sqlite_store.latest_cursor() == 0  # the cursor it took was rolled back too

    # Ingests queued in the same batch as a failing one keep their work.
    results = await asyncio.gather(
        sqlite_store.ingest(_inbound_request("r2"), [_inbound_event("a", key="k1")]),
        sqlite_store.ingest(_inbound_request("r3"), events),
        sqlite_store.ingest(_inbound_request("r4"), [_inbound_event("b", key="k2")]),
        return_exceptions=True,
    )
    assert isinstance(results[1], StoreError)
    assert [e.text for r in (results[0], results[2]) for e in r.events] == ["a", "b"]  # type: ignore[union-attr]
    assert await sqlite_store._read(_count("webhook_requests")) == 2


async def test_purge_deletes_in_chunks_of_short_transactions(tmp_path: Path) -> None:
    old = datetime(2025, 1, 1, tzinfo=UTC)
    new = datetime(2025, 2, 1, tzinfo=UTC)
    async with SqliteStore(tmp_path, purge_chunk=3) as store:
        events = [_inbound_event(f"e{n}", key=f"k{n}", received=old) for n in range(10)]
        await store.ingest(_inbound_request("r-old"), events)
        await store.ingest(
            _inbound_request("r-new"), [_inbound_event("kept", key="k-new", received=new)]
        )
        batches: list[int] = []
        original = store._write

        async def counting_write(op: Callable[[sqlite3.Connection], object]) -> object:
            batches.append(1)
            return await original(op)

        store._write = counting_write  # type: ignore[assignment,method-assign]
        counts = await store.purge(
            events_before=datetime(2025, 1, 15, tzinfo=UTC),
            dedupe_before=datetime(2025, 1, 15, tzinfo=UTC),
        )
        store._write = original  # type: ignore[method-assign]

        assert counts["events"] == 10 and counts["dedupe_keys"] == 10
        # 10 rows in chunks of 3: four deletes each, and one for the leases.
        assert len(batches) == 4 + 4 + 1
        assert [e.text for e in await store.read_events(0)] == ["kept"]


def test_purge_chunk_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="purge_chunk"):
        SqliteStore(tmp_path, purge_chunk=0)


async def test_the_inbound_tables_and_indexes_exist(sqlite_store: SqliteStore) -> None:
    names = await sqlite_store._read(
        lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    )
    assert {
        "webhook_requests",
        "events",
        "dedupe_keys",
        "held_receipts",
        "event_consumers",
        "event_leases",
        "webhook_requests_by_outcome",
        "held_receipts_by_provider_id",
        "held_receipts_by_release",
        "event_leases_by_expiry",
    } <= names
    plan = await sqlite_store._read(
        lambda c: " ".join(
            str(r[3])
            for r in c.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM webhook_requests"
                " WHERE outcome IN ('unmatched') ORDER BY received_at DESC"
            )
        )
    )
    assert "webhook_requests_by_outcome" in plan


# What msgbridge recorded for the SQLite migrations before comments stopped counting toward a
# migration's checksum: the SHA-256 of each whole file as it shipped then.
FORMER_SQLITE_CHECKSUMS = {
    1: "b6a08dca7bd0319fc67f66f65b695af3225e4c88e633aea7dcf70087bcae9b37",
    2: "b304d6b6b4a443c985340a933a67893b45e6fb51f662ad17eb84e2573b32c231",
    3: "4dfd5d5d714cd082d708d4543bfeeef9fa3086d2c228adafa3af96215d39236a",
    4: "3f1e249a67d9021c0452d753cf784d2bbbc5e1cd084316253f6171f4d519507e",
}


def test_a_database_migrated_by_an_older_version_opens_without_a_changed_migration_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    applied = dict(FORMER_SQLITE_CHECKSUMS)
    with caplog.at_level("WARNING", logger="server.store._migrations"):
        assert pending_migrations(applied, load_migrations()[:4]) == ()
    assert caplog.records == []


def test_a_reworded_comment_leaves_the_checksum_alone_and_a_changed_statement_does_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = Migration(version=1, name="t", sql="-- one\nCREATE TABLE t (x INTEGER);\n")
    reworded = Migration(version=1, name="t", sql="  -- another\nCREATE TABLE t (x INTEGER);\n")
    changed = Migration(version=1, name="t", sql="-- one\nCREATE TABLE t (y INTEGER);\n")
    assert reworded.checksum == first.checksum != changed.checksum
    with caplog.at_level("WARNING", logger="server.store._migrations"):
        assert pending_migrations({1: first.checksum}, [reworded]) == ()
        assert caplog.records == []
        assert pending_migrations({1: first.checksum}, [changed]) == ()
    assert "changed after it was applied" in caplog.text


async def test_the_queue_reads_only_the_queued_messages(sqlite_store: SqliteStore) -> None:
    """The due messages are found through the index of the queued ones: a plan that walks every
    message (as SQLite chose to, sparing its window function a sort) costs as much as the store
    holds, on every look at the queue (issue 20)."""
    plan = await sqlite_store._read(
        lambda c: " ".join(str(r[3]) for r in c.execute("EXPLAIN QUERY PLAN " + _DUE, (0, 10, 100)))
    )
    assert "SEARCH m USING INDEX messages_queued" in plan
    assert "SCAN m" not in plan
