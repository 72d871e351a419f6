"""The ``store`` fixture: every test in this folder runs against each Store implementation.

``store_backend`` makes new, unopened stores over one storage place (so a test can close a store
and open another on the same data). Backends: ``sqlite`` (a file in the test's tmp_path) and
``postgres`` (marked ``postgres``): the PostgreSQL server named by ``MSGBRIDGE_TEST_POSTGRES``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``). The test session creates its own
``test_<random>`` database there once, migrates it, empties its tables before each test and drops
it at the end (``replicas``: two stores on it, as two msgbridge replicas). When the server cannot
be reached, the postgres tests FAIL (never skip): run ``pytest -m "not postgres"`` to leave them
out on purpose.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from server.store import PostgresStore, SqliteStore, Store

POSTGRES_ENV = "MSGBRIDGE_TEST_POSTGRES"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class StoreBackend:
    name: str
    make: Callable[[], Store]


# ---------------------------------------------------------------------------------------------
# PostgreSQL: one database per test session


@dataclass(frozen=True, kw_only=True, slots=True)
class PostgresDatabase:
    """The session's own database: its DSN, and the tables to empty before each test."""

    admin_dsn: str
    dsn: str
    tables: tuple[str, ...]

    async def empty(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            # DELETE rather than TRUNCATE: on a few rows it takes well under a millisecond where
            # TRUNCATE takes tens. The event cursor counter is emptied too: cursors restart at 1.
            await conn.execute("; ".join(f"DELETE FROM {table}" for table in self.tables))
        finally:
            await conn.close()


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


async def _create_empty_database(admin_dsn: str, name: str) -> str:
    """Create the database ``name``; its DSN. Fails the test when PostgreSQL is unreachable."""
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL is unreachable at {admin_dsn} ({type(exc).__name__}: {exc}); set "
            f"{POSTGRES_ENV} or deselect these tests with -m 'not postgres'",
            pytrace=False,
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return with_database(admin_dsn, name)


async def _create_database(admin_dsn: str, name: str) -> PostgresDatabase:
    dsn = await _create_empty_database(admin_dsn, name)
    store = PostgresStore(dsn, min_size=1, max_size=1)
    await store.start()  # migrate once for the whole session
    await store.aclose()
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations' ORDER BY tablename"
        )
    finally:
        await conn.close()
    return PostgresDatabase(
        admin_dsn=admin_dsn, dsn=dsn, tables=tuple(f'"{row[0]}"' for row in rows)
    )


async def _drop_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def run_aside(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own, leaving the test's current loop alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    admin_dsn = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    name = f"test_{secrets.token_hex(6)}"
    database = run_aside(_create_database(admin_dsn, name))
    try:
        yield database
    finally:
        run_aside(_drop_database(admin_dsn, name))


@pytest.fixture
def postgres_dsn(postgres_database: PostgresDatabase) -> str:
    """The session's database, migrated, with every table emptied."""
    run_aside(postgres_database.empty())
    return postgres_database.dsn


@pytest.fixture
def fresh_postgres_dsn(postgres_database: PostgresDatabase) -> Iterator[str]:
    """A database of its own for this test, not migrated (for tests of the migrations)."""
    admin_dsn = postgres_database.admin_dsn
    name = f"test_{secrets.token_hex(6)}"
    dsn = run_aside(_create_empty_database(admin_dsn, name))
    try:
        yield dsn
    finally:
        run_aside(_drop_database(admin_dsn, name))


# ---------------------------------------------------------------------------------------------
# The backends


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    return StoreBackend(name="sqlite", make=lambda: SqliteStore(tmp_path / "data"))


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    # Asked for here, not as an argument, so that SQLite-only runs never touch PostgreSQL.
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    run_aside(database.empty())
    return StoreBackend(name="postgres", make=lambda: PostgresStore(database.dsn))


_BACKENDS = {"sqlite": _sqlite, "postgres": _postgres}


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("sqlite"),
    ]
)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    return _BACKENDS[request.param](request, tmp_path)


@pytest.fixture
async def store(store_backend: StoreBackend) -> AsyncIterator[Store]:
    opened = store_backend.make()
    await opened.start()
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
async def replicas(postgres_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, as two msgbridge replicas would have."""
    a, b = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()
