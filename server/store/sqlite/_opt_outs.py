"""The SQLite store's opt-outs (docs/delivery.md, "Opt-outs"): the methods
:class:`~server.store.sqlite.SqliteStore` gets from :class:`OptOutMethods`, and
:func:`apply_opt_out_changes`, which the ingest transaction runs (:mod:`._inbound`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Final, TypeVar

from .._opt_outs import OPT_OUT_COLUMNS, OptOutChanges, opt_out, opt_out_params
from .._queue import OptOutRecord
from .._rows import columns, encode_time
from ._sql import ROWS

__all__ = ["OptOutMethods", "apply_opt_out_changes"]

T = TypeVar("T")

_COLUMN_LIST: Final = columns(OPT_OUT_COLUMNS)

# An existing opt-out is kept as it is: its first source and time.
_KEEP: Final = (
    f"INSERT INTO opt_outs ({_COLUMN_LIST}) VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608
    " ON CONFLICT (installation_id, from_number, to_number) DO NOTHING"
)
_CLEAR: Final = (
    "DELETE FROM opt_outs WHERE installation_id = ? AND from_number = ? AND to_number = ?"
)
# ?1 the organisations as a JSON array (NULL: any); ?2 … ?4 installation, from, to (NULL: any);
# ?5 … ?8 the last one of the previous page (NULL: from the newest); ?9 the limit.
_LIST: Final = f"""
SELECT {_COLUMN_LIST} FROM opt_outs
WHERE (?1 IS NULL OR org_id IN (SELECT value FROM json_each(?1)))
  AND (?2 IS NULL OR installation_id = ?2)
  AND (?3 IS NULL OR from_number = ?3)
  AND (?4 IS NULL OR to_number = ?4)
  AND (?5 IS NULL OR (created_at, installation_id, from_number, to_number) < (?5, ?6, ?7, ?8))
ORDER BY created_at DESC, installation_id DESC, from_number DESC, to_number DESC
LIMIT ?9
"""  # noqa: S608


def apply_opt_out_changes(conn: sqlite3.Connection, changes: OptOutChanges) -> None:
    """Inside the caller's transaction: clear, then keep (see :class:`OptOutChanges`)."""
    if changes.clear:
        conn.executemany(_CLEAR, changes.clear)
    if changes.keep:
        conn.executemany(_KEEP, [opt_out_params(ROWS, record) for record in changes.keep])


class OptOutMethods:
    """The opt-outs of the SQLite store; it runs on the store's ``_write``/``_read``."""

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def record_opt_out(self, record: OptOutRecord) -> None:
        params = opt_out_params(ROWS, record)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_KEEP, params)

        await self._write(op)

    async def clear_opt_out(self, installation_id: str, from_number: str, to_number: str) -> bool:
        params = (installation_id, from_number, to_number)
        return await self._write(lambda conn: conn.execute(_CLEAR, params).rowcount > 0)

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
        orgs = None if org_ids is None else json.dumps(sorted(org_ids))
        last = (None,) * 4 if after is None else (encode_time(after[0]), *after[1:])
        params = (orgs, installation_id, from_number, to_number, *last, limit)

        def fn(conn: sqlite3.Connection) -> tuple[OptOutRecord, ...]:
            return tuple(opt_out(ROWS, row) for row in conn.execute(_LIST, params))

        return await self._read(fn)
