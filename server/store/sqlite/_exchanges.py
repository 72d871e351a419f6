"""The SQLite store's provider exchange log (``server/store/_exchanges.py``): the methods
:class:`~server.store.sqlite.SqliteStore` gets from :class:`ExchangeMethods`."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar

from .._exchanges import EXCHANGE_COLUMNS, ProviderExchange, exchange_params, exchange_record
from .._rows import columns, encode_time
from ._sql import ROWS

__all__ = ["ExchangeMethods"]

T = TypeVar("T")

_LIST: Final = columns(EXCHANGE_COLUMNS)
# Rows go in several to a statement: the writer gives up the interpreter lock for each statement
# it runs and then waits to take it back from the event loop's thread, so a batch of a few
# hundred exchanges written a row at a time made as many of those hand-overs.
_ROWS_PER_STATEMENT: Final = 32


@functools.cache
def _insert(rows: int) -> str:
    """The statement inserting ``rows`` exchanges (at most :data:`_ROWS_PER_STATEMENT`)."""
    row = f"({', '.join('?' * len(EXCHANGE_COLUMNS))})"
    return (
        f"INSERT OR IGNORE INTO provider_exchanges ({_LIST}) "  # noqa: S608 - constants
        f"VALUES {', '.join([row] * rows)}"
    )


_OF_MESSAGE: Final = f"""
SELECT {_LIST} FROM provider_exchanges WHERE message_id = ? ORDER BY started_at, id LIMIT ?
"""  # noqa: S608 - constants
# In chunks, so that a large purge never holds the writer long.
_PURGE: Final = """
DELETE FROM provider_exchanges WHERE id IN (
    SELECT id FROM provider_exchanges WHERE started_at < ? ORDER BY started_at, id LIMIT ?
)
"""
_CHUNK: Final = 1000


class ExchangeMethods:
    """The exchange log of the SQLite store; it runs on the store's ``_write``/``_read``."""

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def record_exchanges(self, exchanges: Sequence[ProviderExchange]) -> None:
        params = [exchange_params(ROWS, exchange) for exchange in exchanges]
        if not params:
            return

        def op(conn: sqlite3.Connection) -> None:
            for start in range(0, len(params), _ROWS_PER_STATEMENT):
                chunk = params[start : start + _ROWS_PER_STATEMENT]
                conn.execute(_insert(len(chunk)), [value for row in chunk for value in row])

        await self._write(op)

    async def list_exchanges(
        self, message_id: str, *, limit: int = 100
    ) -> tuple[ProviderExchange, ...]:
        params = (message_id, limit)
        return await self._read(
            lambda conn: tuple(exchange_record(ROWS, r) for r in conn.execute(_OF_MESSAGE, params))
        )

    async def purge_exchanges(self, before: datetime) -> int:
        params = (encode_time(before), _CHUNK)
        deleted = 0
        while True:
            count = await self._write(lambda conn: conn.execute(_PURGE, params).rowcount)
            deleted += count
            if count < _CHUNK:
                return deleted
