"""The PostgreSQL store's media records and media holds (docs/media.md): the methods
:class:`~server.store.postgres.PostgresStore` gets from :class:`MediaMethods`.

Across replicas: a hold is leased with one ``UPDATE … WHERE lease_until IS NULL OR lease_until
<= now RETURNING`` — of two replicas at once, the second waits for the first's row lock, sees
its lease and updates nothing — and only the lease's owner updates or releases it. A release
deletes the hold and appends its event in one transaction, the append last, as every append is
(``append_events``: the ``event_cursor`` row hands out cursors in commit order and NOTIFYs the
readers of every replica).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final, TypeVar

import asyncpg

from .._base import Conflict, EventMedia, EventRecord
from .._media import (
    HOLD_COLUMNS,
    MEDIA_COLUMNS,
    MediaHold,
    MediaRecord,
    media_hold,
    media_params,
    media_record,
)
from .._opt_outs import opt_out_changes
from .._rows import aware_time, columns, encode_media
from ._inbound import append_events
from ._opt_outs import apply_opt_out_changes
from ._pool import PooledConnection, row_count
from ._sql import ROWS

__all__ = ["MediaMethods"]

T = TypeVar("T")

_MEDIA_LIST: Final = columns(MEDIA_COLUMNS)
_HOLD_LIST: Final = columns(HOLD_COLUMNS)
_INSERT_MEDIA: Final = f"""
INSERT INTO media ({_MEDIA_LIST})
VALUES ({", ".join(f"${n}" for n in range(1, len(MEDIA_COLUMNS) + 1))})
"""  # noqa: S608 - constants
_SELECT_MEDIA: Final = f"SELECT {_MEDIA_LIST} FROM media WHERE id = $1"  # noqa: S608
# $1 before, $2 limit.
_EXPIRED_MEDIA: Final = f"""
SELECT {_MEDIA_LIST} FROM media WHERE created_at < $1 ORDER BY created_at, id LIMIT $2
"""  # noqa: S608 - constants
_DELETE_MEDIA: Final = "DELETE FROM media WHERE id = ANY ($1::text[])"

# $1 now, $2 limit: due and not under a live lease.
_DUE_HOLDS: Final = f"""
SELECT {_HOLD_LIST} FROM media_holds
WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
ORDER BY next_attempt_at, id LIMIT $2
"""  # noqa: S608 - constants
# A leased hold is next due when its lease ends, if that is later (GREATEST skips a NULL).
_NEXT_HOLD_AT: Final = "SELECT MIN(GREATEST(next_attempt_at, lease_until)) FROM media_holds"
# $1 owner, $2 lease_until, $3 id, $4 now. A concurrent lease waits for this row's lock, then
# reads the lease just taken and updates nothing.
_LEASE_HOLD: Final = f"""
UPDATE media_holds SET lease_owner = $1, lease_until = $2
WHERE id = $3 AND (lease_until IS NULL OR lease_until <= $4)
RETURNING {_HOLD_LIST}
"""  # noqa: S608 - constants
# $1 progress, $2 next_attempt_at, $3 id, $4 owner.
_UPDATE_HOLD: Final = """
UPDATE media_holds
SET progress_json = $1, next_attempt_at = $2, attempts = attempts + 1,
    lease_owner = NULL, lease_until = NULL
WHERE id = $3 AND lease_owner = $4
"""
# $1 id, $2 owner.
_TAKE_HOLD: Final = f"""
DELETE FROM media_holds WHERE id = $1 AND lease_owner = $2 RETURNING {_HOLD_LIST}
"""  # noqa: S608 - constants


class MediaMethods:
    """Media of the PostgreSQL store; it runs on the store's ``_read``/``_statement``/
    ``_write``."""

    async def _read(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _statement(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _write(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    # --- media holds ------------------------------------------------------------------------

    async def due_media_holds(self, now: datetime, *, limit: int) -> tuple[MediaHold, ...]:
        when = aware_time(now)

        async def fn(conn: PooledConnection) -> tuple[MediaHold, ...]:
            rows = await conn.fetch(_DUE_HOLDS, when, limit)
            return tuple(media_hold(ROWS, row) for row in rows)

        return await self._read(fn)

    async def next_media_hold_at(self) -> datetime | None:
        async def fn(conn: PooledConnection) -> datetime | None:
            value = await conn.fetchval(_NEXT_HOLD_AT)
            return None if value is None else ROWS.time_value(value)

        return await self._read(fn)

    async def lease_media_hold(
        self, hold_id: str, *, owner: str, lease_until: datetime, now: datetime
    ) -> MediaHold | None:
        params = (owner, aware_time(lease_until), hold_id, aware_time(now))

        async def op(conn: PooledConnection) -> MediaHold | None:
            row = await conn.fetchrow(_LEASE_HOLD, *params)
            return None if row is None else media_hold(ROWS, row)

        return await self._statement(op)

    async def update_media_hold(
        self,
        hold_id: str,
        *,
        owner: str,
        progress: Sequence[EventMedia],
        next_attempt_at: datetime,
    ) -> bool:
        params = (encode_media(progress), aware_time(next_attempt_at), hold_id, owner)

        async def op(conn: PooledConnection) -> bool:
            return row_count(await conn.execute(_UPDATE_HOLD, *params)) > 0

        return await self._statement(op)

    async def release_media_hold(
        self, hold_id: str, *, owner: str, media: Sequence[EventMedia]
    ) -> EventRecord | None:
        kept = tuple(media)

        async def op(conn: PooledConnection) -> EventRecord | None:
            row = await conn.fetchrow(_TAKE_HOLD, hold_id, owner)
            if row is None:
                return None
            event = replace(media_hold(ROWS, row).event, media=kept)
            # The rule every appended event follows (store/_opt_outs.py); then the append, last.
            await apply_opt_out_changes(conn, opt_out_changes([event]))
            (appended,) = await append_events(conn, [(event, ROWS.event_params(event))])
            return appended

        return await self._write(op)

    # --- media records ----------------------------------------------------------------------

    async def put_media(self, record: MediaRecord) -> None:
        params = media_params(ROWS, record)

        async def op(conn: PooledConnection) -> None:
            try:
                await conn.execute(_INSERT_MEDIA, *params)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"media {record.id!r} already exists") from exc

        await self._statement(op)

    async def get_media(self, media_id: str) -> MediaRecord | None:
        async def fn(conn: PooledConnection) -> MediaRecord | None:
            row = await conn.fetchrow(_SELECT_MEDIA, media_id)
            return None if row is None else media_record(ROWS, row)

        return await self._read(fn)

    async def expired_media(self, before: datetime, *, limit: int) -> tuple[MediaRecord, ...]:
        when = aware_time(before)

        async def fn(conn: PooledConnection) -> tuple[MediaRecord, ...]:
            rows = await conn.fetch(_EXPIRED_MEDIA, when, limit)
            return tuple(media_record(ROWS, row) for row in rows)

        return await self._read(fn)

    async def delete_media(self, media_ids: Sequence[str]) -> int:
        wanted = list(dict.fromkeys(media_ids))
        if not wanted:
            return 0

        async def op(conn: PooledConnection) -> int:
            return row_count(await conn.execute(_DELETE_MEDIA, wanted))

        return await self._statement(op)
