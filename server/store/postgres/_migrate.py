"""Applying the PostgreSQL migrations (``migrations/postgres/NNNN_name.sql``).

Numbered like the SQLite ones and recorded in the same ``schema_migrations`` table.
:meth:`PostgresStore.start` applies the pending ones while holding a session-level advisory lock
(:data:`MIGRATION_LOCK`), each in its own transaction, so replicas starting together migrate
once: the others wait for the lock, then find nothing to do.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import asyncpg

from .._migrations import Migration, MigrationError, pending_migrations
from ._pool import CONNECTION_ERRORS, Connection

__all__ = ["MIGRATION_LOCK", "apply_migrations"]

logger = logging.getLogger(__name__)

MIGRATION_LOCK: Final = 0x6D73_6762_0000_0001
"""The session advisory lock (one bigint key) held while migrating: "msgb", then 1."""

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL
)
"""


async def apply_migrations(
    conn: Connection, migrations: Sequence[Migration]
) -> tuple[Migration, ...]:
    """Apply the pending migrations, each in its own transaction, under :data:`MIGRATION_LOCK`.

    The lock is a session lock held across all of them: a replica opening at the same time
    waits here, then reads ``schema_migrations`` afresh and finds nothing left to do.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(_CREATE_MIGRATIONS_TABLE)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {int(row[0]): str(row[1]) for row in rows}
        done: list[Migration] = []
        for migration in pending_migrations(applied, migrations):
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                        " VALUES ($1, $2, $3, $4)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                        datetime.now(UTC),
                    )
                    await conn.execute(migration.sql)  # no arguments: a multi-statement script
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                ) from exc
            done.append(migration)
            logger.info("applied schema migration %04d_%s", migration.version, migration.name)
        return tuple(done)
    finally:
        with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
