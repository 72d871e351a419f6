"""The SQLite store's media records and media holds (docs/media.md): the methods
:class:`~server.store.sqlite.SqliteStore` gets from :class:`MediaMethods`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final, TypeVar

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
from .._rows import columns, encode_media, encode_time
from ._opt_outs import apply_opt_out_changes
from ._sql import INSERT_EVENT, ROWS

__all__ = ["MediaMethods"]

T = TypeVar("T")

_MEDIA_LIST: Final = columns(MEDIA_COLUMNS)
_HOLD_LIST: Final = columns(HOLD_COLUMNS)
_INSERT_MEDIA: Final = (
    f"INSERT INTO media ({_MEDIA_LIST}) VALUES ({', '.join('?' * len(MEDIA_COLUMNS))})"  # noqa: S608
)
# ?1 now, ?2 limit: due and not under a live lease.
_DUE_HOLDS: Final = f"""
SELECT {_HOLD_LIST} FROM media_holds
WHERE next_attempt_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
ORDER BY next_attempt_at, id LIMIT ?2
"""  # noqa: S608
_NEXT_HOLD_AT: Final = """
SELECT MIN(CASE WHEN lease_until IS NULL OR lease_until < next_attempt_at
                THEN next_attempt_at ELSE lease_until END)
FROM media_holds
"""
_LEASE_HOLD: Final = f"""
UPDATE media_holds SET lease_owner = ?1, lease_until = ?2
WHERE id = ?3 AND (lease_until IS NULL OR lease_until <= ?4)
RETURNING {_HOLD_LIST}
"""  # noqa: S608
_UPDATE_HOLD: Final = """
UPDATE media_holds
SET progress_json = ?1, next_attempt_at = ?2, attempts = attempts + 1,
    lease_owner = NULL, lease_until = NULL
WHERE id = ?3 AND lease_owner = ?4
"""
_TAKE_HOLD: Final = (
    f"DELETE FROM media_holds WHERE id = ?1 AND lease_owner = ?2 RETURNING {_HOLD_LIST}"  # noqa: S608
)
_EXPIRED_MEDIA: Final = (
    f"SELECT {_MEDIA_LIST} FROM media WHERE created_at < ? ORDER BY created_at, id LIMIT ?"  # noqa: S608
)


class MediaMethods:
    """Media of the SQLite store; it runs on the store's ``_write``/``_read``."""

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def due_media_holds(self, now: datetime, *, limit: int) -> tuple[MediaHold, ...]:
        params = (encode_time(now), limit)
        return await self._read(
            lambda conn: tuple(media_hold(ROWS, r) for r in conn.execute(_DUE_HOLDS, params))
        )

    async def next_media_hold_at(self) -> datetime | None:
        value = await self._read(lambda conn: conn.execute(_NEXT_HOLD_AT).fetchone()[0])
        return None if value is None else ROWS.time_value(value)

    async def lease_media_hold(
        self, hold_id: str, *, owner: str, lease_until: datetime, now: datetime
    ) -> MediaHold | None:
        params = (owner, encode_time(lease_until), hold_id, encode_time(now))

        def op(conn: sqlite3.Connection) -> MediaHold | None:
            row = conn.execute(_LEASE_HOLD, params).fetchone()
            return None if row is None else media_hold(ROWS, row)

        return await self._write(op)

    async def update_media_hold(
        self,
        hold_id: str,
        *,
        owner: str,
        progress: Sequence[EventMedia],
        next_attempt_at: datetime,
    ) -> bool:
        params = (encode_media(progress), encode_time(next_attempt_at), hold_id, owner)
        return await self._write(lambda conn: conn.execute(_UPDATE_HOLD, params).rowcount > 0)

    async def release_media_hold(
        self, hold_id: str, *, owner: str, media: Sequence[EventMedia]
    ) -> EventRecord | None:
        kept = tuple(media)

        def op(conn: sqlite3.Connection) -> EventRecord | None:
            row = conn.execute(_TAKE_HOLD, (hold_id, owner)).fetchone()
            if row is None:
                return None
            event = replace(media_hold(ROWS, row).event, media=kept)
            # The rule every appended event follows (store/_opt_outs.py).
            apply_opt_out_changes(conn, opt_out_changes([event]))
            cursor = conn.execute(INSERT_EVENT, ROWS.event_params(event)).lastrowid
            assert cursor is not None
            return EventRecord.appended(event, cursor)

        return await self._write(op)

    async def put_media(self, record: MediaRecord) -> None:
        params = media_params(ROWS, record)

        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(_INSERT_MEDIA, params)
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"media {record.id!r} already exists") from exc

        await self._write(op)

    async def get_media(self, media_id: str) -> MediaRecord | None:
        def fn(conn: sqlite3.Connection) -> MediaRecord | None:
            row = conn.execute(
                f"SELECT {_MEDIA_LIST} FROM media WHERE id = ?",  # noqa: S608
                (media_id,),
            ).fetchone()
            return None if row is None else media_record(ROWS, row)

        return await self._read(fn)

    async def expired_media(self, before: datetime, *, limit: int) -> tuple[MediaRecord, ...]:
        params = (encode_time(before), limit)
        return await self._read(
            lambda conn: tuple(media_record(ROWS, r) for r in conn.execute(_EXPIRED_MEDIA, params))
        )

    async def delete_media(self, media_ids: Sequence[str]) -> int:
        ids = [(media_id,) for media_id in media_ids]

        def op(conn: sqlite3.Connection) -> int:
            return sum(conn.execute("DELETE FROM media WHERE id = ?", one).rowcount for one in ids)

        return await self._write(op)
