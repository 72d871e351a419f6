"""A PostgreSQL database of a run's own: ``test_<random>`` on the machine's server, dropped
after."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

__all__ = ["POSTGRES_ADMIN", "database_url", "fresh_database"]

# The maintenance database the run connects to in order to create and drop its own.
POSTGRES_ADMIN = os.environ.get(
    "MSGBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url(name: str) -> str:
    return f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{name}"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create ``test_<random>``; yield its URL; drop it (closing what is still connected)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield database_url(name)
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
