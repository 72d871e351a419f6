"""The PostgreSQL store's connections: the wrapper every statement goes through (U+0000 in
text), running a call on the pool (retries, transactions), and the mapping of asyncpg errors
to :class:`StoreError`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import asyncpg

from .._base import Conflict, StoreClosed, StoreError

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
    "run_on_pool",
    "storable",
]

T = TypeVar("T")

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


async def run_on_pool(
    current_pool: Callable[[], Any],
    fn: Callable[[PooledConnection], Awaitable[T]],
    *,
    transaction: bool,
    read_only: bool = False,
) -> T:
    """Run ``fn`` on a connection of ``current_pool()`` (in a transaction when asked); map the
    errors. ``current_pool()`` is None once the store is closed, asked again before each try.

    ``fn`` may raise :class:`RunAgain` to be run again from the start (its transaction, if any,
    rolled back). A ``read_only`` one is also run again once after a lost connection; a write is
    not (its commit may have happened).
    """
    retried_read = False
    attempt = 0
    while True:
        pool = current_pool()
        if pool is None:
            raise StoreClosed("the store is not open")
        attempt += 1
        try:
            async with pool.acquire() as raw:
                if not transaction:
                    return await fn(PooledConnection(raw))
                async with raw.transaction():
                    return await fn(PooledConnection(raw))
        except StoreError:
            raise
        except RunAgain:
            if attempt < ROLLBACK_RETRIES:
                continue
            raise StoreError("the transaction kept meeting concurrent changes") from None
        except asyncpg.TransactionRollbackError as exc:
            # A serialization failure or a deadlock: PostgreSQL rolled it all back.
            if attempt < ROLLBACK_RETRIES:
                continue
            raise as_store_error(exc) from exc
        except CONNECTION_ERRORS as exc:  # before PostgresError: some are of its kind
            if current_pool() is None:
                raise StoreClosed("the store is closed") from exc
            if read_only and not retried_read:
                retried_read = True  # a read is safe to run again on another connection
                continue
            raise as_store_error(exc) from exc
        except asyncpg.PostgresError as exc:
            raise as_store_error(exc) from exc
