"""The PostgreSQL store's provider exchange log (``server/store/_exchanges.py``): the methods
:class:`~server.store.postgres.PostgresStore` gets from :class:`ExchangeMethods`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar

from .._exchanges import EXCHANGE_COLUMNS, ProviderExchange, exchange_params, exchange_record
from .._rows import aware_time, columns
from ._pool import PooledConnection, row_count
from ._sql import ROWS

__all__ = ["ExchangeMethods"]

T = TypeVar("T")

_LIST: Final = columns(EXCHANGE_COLUMNS)
_INSERT: Final = f"""
INSERT INTO provider_exchanges ({_LIST})
VALUES ({", ".join(f"${n}" for n in range(1, len(EXCHANGE_COLUMNS) + 1))})
ON CONFLICT (id) DO NOTHING
"""  # noqa: S608 - constants
_OF_MESSAGE: Final = f"""
SELECT {_LIST} FROM provider_exchanges WHERE message_id = $1 ORDER BY started_at, id LIMIT $2
"""  # noqa: S608 - constants
# In chunks, so that a large purge never holds locks long.
_PURGE: Final = """
DELETE FROM provider_exchanges WHERE id IN (
    SELECT id FROM provider_exchanges WHERE started_at < $1 ORDER BY started_at, id LIMIT $2
)
"""
_CHUNK: Final = 1000


class ExchangeMethods:
    """The exchange log of the PostgreSQL store; it runs on the store's pool."""

    async def _read(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _statement(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def record_exchanges(self, exchanges: Sequence[ProviderExchange]) -> None:
        params = [exchange_params(ROWS, exchange) for exchange in exchanges]
        if not params:
            return

        async def op(conn: PooledConnection) -> None:
            await conn.executemany(_INSERT, params)

        await self._statement(op)

    async def list_exchanges(
        self, message_id: str, *, limit: int = 100
    ) -> tuple[ProviderExchange, ...]:
        async def fn(conn: PooledConnection) -> tuple[ProviderExchange, ...]:
            rows = await conn.fetch(_OF_MESSAGE, message_id, limit)
            return tuple(exchange_record(ROWS, row) for row in rows)

        return await self._read(fn)

    async def purge_exchanges(self, before: datetime) -> int:
        when = aware_time(before)
        deleted = 0
        while True:

            async def op(conn: PooledConnection) -> int:
                return row_count(await conn.execute(_PURGE, when, _CHUNK))

            count = await self._statement(op)
            deleted += count
            if count < _CHUNK:
                return deleted
