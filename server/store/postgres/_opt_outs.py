"""The PostgreSQL store's opt-outs (docs/delivery.md, "Opt-outs"): the methods
:class:`~server.store.postgres.PostgresStore` gets from :class:`OptOutMethods`, and
:func:`apply_opt_out_changes`, which the ingest transaction runs (:mod:`._inbound`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, TypeVar

from .._opt_outs import OPT_OUT_COLUMNS, OptOutChanges, opt_out, opt_out_params
from .._queue import OptOutRecord
from .._rows import aware_time, columns
from ._pool import PooledConnection, row_count
from ._sql import ROWS

__all__ = ["OptOutMethods", "apply_opt_out_changes"]

T = TypeVar("T")

_COLUMN_LIST: Final = columns(OPT_OUT_COLUMNS)

# An existing opt-out is kept as it is: its first source and time.
_KEEP: Final = (
    f"INSERT INTO opt_outs ({_COLUMN_LIST}) VALUES ($1, $2, $3, $4, $5, $6)"  # noqa: S608
    " ON CONFLICT (installation_id, from_number, to_number) DO NOTHING"
)
_CLEAR: Final = (
    "DELETE FROM opt_outs WHERE installation_id = $1 AND from_number = $2 AND to_number = $3"
)
# $1 the organisations (NULL: any); $2 … $4 installation, from, to (NULL: any); $5 … $8 the last
# one of the previous page (NULL: from the newest); $9 the limit. The columns sort by "C", as
# SQLite's do.
_LIST: Final = f"""
SELECT {_COLUMN_LIST} FROM opt_outs
WHERE ($1::text[] IS NULL OR org_id = ANY ($1))
  AND ($2::text IS NULL OR installation_id = $2)
  AND ($3::text IS NULL OR from_number = $3)
  AND ($4::text IS NULL OR to_number = $4)
  AND ($5::timestamptz IS NULL OR (created_at, installation_id, from_number, to_number)
                                   < ($5, $6::text, $7::text, $8::text))
ORDER BY created_at DESC, installation_id DESC, from_number DESC, to_number DESC
LIMIT $9
"""  # noqa: S608


async def apply_opt_out_changes(conn: PooledConnection, changes: OptOutChanges) -> None:
    """Inside the caller's transaction: clear, then keep (see :class:`OptOutChanges`)."""
    if changes.clear:
        await conn.executemany(_CLEAR, changes.clear)
    if changes.keep:
        await conn.executemany(_KEEP, [opt_out_params(ROWS, record) for record in changes.keep])


class OptOutMethods:
    """The opt-outs of the PostgreSQL store; it runs on the store's ``_read``/``_statement``."""

    async def _read(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _statement(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def record_opt_out(self, record: OptOutRecord) -> None:
        params = opt_out_params(ROWS, record)

        async def op(conn: PooledConnection) -> None:
            await conn.execute(_KEEP, *params)

        await self._statement(op)

    async def clear_opt_out(self, installation_id: str, from_number: str, to_number: str) -> bool:
        async def op(conn: PooledConnection) -> bool:
            status = await conn.execute(_CLEAR, installation_id, from_number, to_number)
            return row_count(status) > 0

        return await self._statement(op)

    async def list_opt_outs(
        self,
        *,
        org_ids: frozenset[str] | None = None,
        installation_id: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        after: tuple[datetime, str, str, str] | None = None,
        limit: int = 100,
    ) -> tuple[OptOutRecord, ...]:
        orgs = None if org_ids is None else sorted(org_ids)
        last = (None,) * 4 if after is None else (aware_time(after[0]), *after[1:])
        params = (orgs, installation_id, from_number, to_number, *last, limit)

        async def fn(conn: PooledConnection) -> tuple[OptOutRecord, ...]:
            return tuple(opt_out(ROWS, row) for row in await conn.fetch(_LIST, *params))

        return await self._read(fn)
