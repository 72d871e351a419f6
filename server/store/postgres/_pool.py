"""The PostgreSQL store's connections: the wrapper every statement goes through (U+0000 in
text), the mapping of asyncpg errors to :class:`StoreError`, and the pool's settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import asyncpg

from .._base import Conflict, StoreError

__all__ = [
    "CONNECTION_ERRORS",
    "CONNECT_TIMEOUT_S",
    "ROLLBACK_RETRIES",
    "Connection",
    "PooledConnection",
    "Row",
    "RunAgain",
    "as_store_error",
    "keep_session",
    "row_count",
    "storable",
]

Connection = Any  # asyncpg.Connection (asyncpg ships no type hints)
Row = Any  # asyncpg.Record

ROLLBACK_RETRIES: Final = 5
CONNECT_TIMEOUT_S: Final = 10.0


def storable(value: object) -> object:
    """An argument as PostgreSQL can store it: U+0000, which text refuses, becomes U+FFFD."""
    if type(value) is str:
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if type(value) is list:
        return [storable(item) for item in value]
    return value


class PooledConnection:
    """A pooled connection whose every text argument passes through :func:`storable`.

    Maps, lists and headers are JSON text, where JSON escapes U+0000, so they round-trip
    exactly; only a plain text column with U+0000 in it reads back with U+FFFD instead.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: Connection) -> None:
        self.raw = raw

    async def execute(self, query: str, *args: object) -> str:
        return str(await self.raw.execute(query, *map(storable, args)))

    async def executemany(self, query: str, args: Sequence[Sequence[object]]) -> None:
        await self.raw.executemany(query, [tuple(map(storable, row)) for row in args])

    async def fetch(self, query: str, *args: object) -> list[Row]:
        return list(await self.raw.fetch(query, *map(storable, args)))

    async def fetchrow(self, query: str, *args: object) -> Row | None:
        return await self.raw.fetchrow(query, *map(storable, args))

    async def fetchval(self, query: str, *args: object) -> Any:
        return await self.raw.fetchval(query, *map(storable, args))


def row_count(status: str) -> int:
    """The row count of a command status such as ``DELETE 3`` or ``UPDATE 0``."""
    return int(status.rsplit(" ", 1)[-1])


class RunAgain(Exception):
    """Raised inside a transaction to roll it back and run it again."""


CONNECTION_ERRORS: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


def as_store_error(exc: Exception) -> StoreError:
    if isinstance(exc, asyncpg.UniqueViolationError):
        constraint = getattr(exc, "constraint_name", None) or "a unique key"
        error: StoreError = Conflict(f"already in use ({constraint})")
    else:
        error = StoreError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


async def keep_session(conn: Connection) -> None:
    """The pool's reset: nothing to undo.

    The pool does not reset a connection when it is returned (no ``RESET ALL`` round trip per
    call): the store never changes session state and takes only transaction-level locks, except
    the migration lock, which it releases itself.
    """
