"""Migration 0005 (docs/format.md, "Numbers"): names stored by their digits get their own text.

Each test opens a database at schema version 4 with rows keyed as msgbridge keyed them before
(``A0PNCHHK2`` → ``02``), reopens it with every migration, and checks the result on both backends.
The old rows are written by today's store, whose insert names a column added later
(``send_limits_json``, 0008): :func:`write_at_version_4` adds it for the writes and drops it again,
so the migrations meet the version-4 table.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from server.core import normalize_number
from server.core._numbers import is_phone_shaped
from server.store import (
    InstallationRecord,
    NumberAssignment,
    NumberTaken,
    PostgresStore,
    SqliteStore,
    Store,
)
from server.store._migrations import Migration, load_migrations
from server.store.sqlite import DEFAULT_FILENAME

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

MakeStore = Callable[[Sequence[Migration]], Store]
Alter = Callable[[str], Awaitable[None]]  # runs one statement on the database, store closed


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, MakeStore, Alter]:
    if request.param == "sqlite":
        path = tmp_path / "data"

        async def alter_sqlite(statement: str) -> None:
            conn = sqlite3.connect(path / DEFAULT_FILENAME)
            try:
                with conn:
                    conn.execute(statement)
            finally:
                conn.close()

        return (
            "sqlite",
            lambda migrations: SqliteStore(path, migrations=migrations),
            alter_sqlite,
        )
    # Asked for here, not as an argument, so that SQLite-only runs never touch PostgreSQL.
    dsn: str = request.getfixturevalue("fresh_postgres_dsn")

    async def alter_postgres(statement: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    return (
        "postgres",
        lambda migrations: PostgresStore(dsn, min_size=1, max_size=2, migrations=migrations),
        alter_postgres,
    )


async def write_at_version_4(
    make_store: tuple[str, MakeStore, Alter], write: Callable[[Store], Awaitable[None]]
) -> None:
    """Open a new database at schema version 4 and ``write`` its rows with today's store.

    Today's installation insert names ``send_limits_json`` (migration 0008), so the column is
    added for the writes and dropped again afterwards: the later migrations then run on the
    table as version 4 had it.
    """
    dialect, make, alter = make_store
    migrations = load_migrations(dialect=dialect)[:4]
    old = make(migrations)
    await old.start()
    await old.aclose()
    await alter("ALTER TABLE installations ADD COLUMN send_limits_json TEXT NOT NULL DEFAULT ''")
    old = make(migrations)
    await old.start()
    try:
        await write(old)
    finally:
        await old.aclose()
    await alter("ALTER TABLE installations DROP COLUMN send_limits_json")


def record(
    installation_id: str,
    numbers: Sequence[tuple[str, str]],
    *,
    integration_id: str = "acme",
    enabled: bool = True,
    region: str | None = "US",
) -> InstallationRecord:
    return InstallationRecord(
        id=installation_id,
        org_id="org-1",
        integration_id=integration_id,
        properties={},
        numbers=tuple(
            NumberAssignment(number=key, given=given, users=(f"u-{key}",)) for key, given in numbers
        ),
        default_region=region,
        enabled=enabled,
        webhook_token_hash=f"hash-{installation_id}",
        subscription_state="not_required",
        subscription_error=None,
        created_at=T0,
        updated_at=T0,
    )


# Rows at version 4, keyed as the old rule keyed them (its output for each `given`).
BEFORE = (
    record(
        "inst-a",
        [("+15550000001", "15550000001"), ("02", "A0PNCHHK2"), ("acme", "ACME")],
    ),
    # B0PNCHHK2 collided with A0PNCHHK2 (both "02"), so it could only be stored disabled.
    record("inst-b", [("02", " B0PNCHHK2 ")], enabled=False),
    # A short code, a scheme-prefixed phone number, a name with non-ASCII text (left alone).
    record("inst-c", [("12345", "12345"), ("+14155238886", "whatsapp:+14155238886")]),
    record("inst-d", [("62", "Zürich62")]),
    record("inst-e", [("9", "My Shop 9")]),
    # The same name held under two regions: both would become "INFO1234567": left alone.
    record("inst-f", [("+11234567", "INFO1234567")], integration_id="other"),
    record("inst-g", [("+441234567", "INFO1234567")], integration_id="other", region="GB"),
)


async def test_names_keyed_by_digits_are_rekeyed_by_their_text(
    make_store: tuple[str, MakeStore, Alter],
) -> None:
    dialect, make, _ = make_store
    migrations = load_migrations(dialect=dialect)
    assert migrations[4].name == "verbatim_addresses"

    async def write(old: Store) -> None:
        await old.put_integration("acme", "{}")
        await old.put_integration("other", "{}")
        for item in BEFORE:
            await old.create_installation(item)

    await write_at_version_4(make_store, write)

    store = make(migrations)
    await store.start()
    try:
        after = {item.id: await store.get_installation(item.id) for item in BEFORE}
        keys = {i: [n.number for n in r.numbers] for i, r in after.items() if r is not None}
        assert keys == {
            "inst-a": ["+15550000001", "A0PNCHHK2", "ACME"],
            "inst-b": ["B0PNCHHK2"],
            "inst-c": ["12345", "+14155238886"],
            "inst-d": ["62"],
            "inst-e": ["My Shop 9"],
            "inst-f": ["+11234567"],
            "inst-g": ["+441234567"],
        }
        # Nothing else changes: what the operator wrote, the users, the order.
        for item in BEFORE:
            now = after[item.id]
            assert now is not None
            assert [(n.given, n.users) for n in now.numbers] == [
                (n.given, n.users) for n in item.numbers
            ]
        # What the migration re-keyed is what the program computes.
        for i in ("inst-a", "inst-b", "inst-c", "inst-e"):
            now = after[i]
            assert now is not None
            for n in now.numbers:
                assert n.number == normalize_number(n.given, now.default_region)

        found = await store.find_installation_by_number("acme", "A0PNCHHK2")
        assert found is not None and found.id == "inst-a"
        assert await store.find_installation_by_number("acme", "02") is None
        found = await store.find_installation_by_number("acme", "My Shop 9")
        assert found is not None and found.id == "inst-e"
        found = await store.find_installation_by_number("other", "+441234567")
        assert found is not None and found.id == "inst-g"

        # The two names no longer collide: B0PNCHHK2's installation can now be enabled.
        inst_b = after["inst-b"]
        assert inst_b is not None
        await store.update_installation(dataclasses.replace(inst_b, enabled=True))
        found = await store.find_installation_by_number("acme", "B0PNCHHK2")
        assert found is not None and found.id == "inst-b"
        # ... and the key is still held once: a second holder of A0PNCHHK2 is refused.
        clash = record("inst-h", [("A0PNCHHK2", "A0PNCHHK2")])
        with pytest.raises(NumberTaken):
            await store.create_installation(clash)
    finally:
        await store.aclose()


def old_key(number: str, region: str | None) -> str:
    """How msgbridge keyed a number before schema version 5: a name by its digits."""
    text = number.strip()
    if not is_phone_shaped(text):  # the old rule read names like phone numbers
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) > 6:
            return "+" + digits  # a stand-in for the E.164 some of them became
        return digits or text.casefold()
    return normalize_number(text, region)  # unchanged for phone-shaped addresses


# Printable ASCII addresses of every shape the SQL has to classify as the program does.
GIVENS = (
    "A0PNCHHK2",
    "  B0PNCHHK2 ",
    "acme",
    "ACME",
    "My Shop 9",
    "INFO1234567",
    "1-800-FLOWERS",
    "555 123 4567 ext 89",
    "*100#",
    "#123",
    ":555",
    "a:b:555",
    "x-sms.2+:555",
    "1x:555",
    "whatsapp:MyShop",
    "whatsapp:+14155238886",
    "tel:+1-555-123-4567",
    "tel:",
    "12345",
    "123-45",
    "+1 (555) 123-4567",
    "555.123.4567",
    "15551234567",
    "+12",
    "()",
)


async def test_the_migration_keys_names_as_the_program_does(
    make_store: tuple[str, MakeStore, Alter],
) -> None:
    dialect, make, _ = make_store
    migrations = load_migrations(dialect=dialect)

    async def write(old: Store) -> None:
        for index, given in enumerate(GIVENS):
            # An integration each: several of these are one phone number.
            await old.put_integration(f"i-{index}", "{}")
            await old.create_installation(
                record(
                    f"inst-{index}",
                    [(old_key(given, "US"), given)],
                    integration_id=f"i-{index}",
                    enabled=index % 2 == 0,
                )
            )

    await write_at_version_4(make_store, write)
    for _ in range(2):  # opening again applies nothing and changes nothing
        store = make(migrations)
        await store.start()
        try:
            for index, given in enumerate(GIVENS):
                now = await store.get_installation(f"inst-{index}")
                assert now is not None
                assert [n.number for n in now.numbers] == [normalize_number(given, "US")], given
        finally:
            await store.aclose()
