"""The :class:`SqliteStore` itself: lifecycle, integrations, installations, messages and the
small keyed values (the inbound path is :mod:`._inbound`)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .._base import (
    UNSET,
    Conflict,
    InstallationRecord,
    IntegrationRecord,
    MessageRecord,
    MessageState,
    NumberTaken,
    RecordNotFound,
    StoreClosed,
    Unset,
)
from .._keyset_sql import KeysetListings, Statement
from .._migrations import Migration
from .._rows import decode_time, encode_ids, encode_time
from ._connect import Synchronous, connect, open_database
from ._exchanges import ExchangeMethods
from ._inbound import InboundMethods
from ._media import MediaMethods
from ._opt_outs import OptOutMethods
from ._queue import QueueMethods
from ._sql import (
    CLAIM_MESSAGE,
    DIALECT,
    INSERT_INSTALLATION,
    INSERT_MESSAGE,
    INSERT_MESSAGE_PART,
    LIST_INTEGRATIONS,
    ROWS,
    SELECT_INSTALLATION,
    SELECT_INSTALLATION_BY_NUMBER,
    SELECT_MESSAGE,
    SELECT_MESSAGE_BY_PART,
    SELECTS,
    UPDATE_INSTALLATION,
    UPDATE_MESSAGE,
)
from ._workers import Checkpointer, Readers, Writer

__all__ = ["DEFAULT_FILENAME", "SqliteStore"]

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_FILENAME = "msgbridge.sqlite3"

_integration = ROWS.integration
_installation = ROWS.installation
_message = ROWS.message


def _change(value: object) -> tuple[int, object]:
    return (0, None) if value is UNSET else (1, value)


def _insert_numbers(conn: sqlite3.Connection, record: InstallationRecord) -> None:
    """Record the numbers an enabled installation holds; the primary key decides who wins."""
    for assignment in record.numbers:
        try:
            conn.execute(
                "INSERT INTO installation_numbers (integration_id, number, installation_id, org_id)"
                " VALUES (?, ?, ?, ?)",
                (record.integration_id, assignment.number, record.id, record.org_id),
            )
        except sqlite3.IntegrityError as exc:
            holder = conn.execute(
                "SELECT installation_id FROM installation_numbers"
                " WHERE integration_id = ? AND number = ?",
                (record.integration_id, assignment.number),
            ).fetchone()
            if holder is None:  # not the number's key that failed
                raise
            raise NumberTaken(assignment.number, holder[0]) from exc


class SqliteStore(
    KeysetListings, ExchangeMethods, InboundMethods, MediaMethods, OptOutMethods, QueueMethods
):
    """The :class:`~server.store.Store` on an SQLite database file in a data directory.

    ``path`` is the data directory (created if missing); the database is ``path / filename``.
    """

    _DIALECT = DIALECT
    _ROWS = ROWS
    _SELECTS = SELECTS

    def __init__(
        self,
        path: Path,
        *,
        filename: str = DEFAULT_FILENAME,
        synchronous: Synchronous = "NORMAL",
        readers: int = 2,
        max_batch: int = 512,
        migrations: Sequence[Migration] | None = None,
        purge_chunk: int = 5000,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        if readers < 1 or max_batch < 1 or purge_chunk < 1:
            raise ValueError("readers, max_batch and purge_chunk must be at least 1")
        self._directory = Path(path)
        self._database = self._directory / filename
        self._synchronous = synchronous
        self._reader_count = readers
        self._max_batch = max_batch
        self._migrations = migrations
        self._purge_chunk = purge_chunk
        self._writer: Writer | None = None
        self._readers: Readers | None = None
        self._checkpointer: Checkpointer | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_file(
        cls,
        database: Path,
        *,
        synchronous: Synchronous = "NORMAL",
        readers: int = 2,
        max_batch: int = 512,
    ) -> SqliteStore:
        """The store on this database file (its directory is created if missing).

        For a ``sqlite:///PATH`` database URL, which names the file rather than the directory.
        """
        database = Path(database)
        return cls(
            database.parent,
            filename=database.name,
            synchronous=synchronous,
            readers=readers,
            max_batch=max_batch,
        )

    @property
    def database_path(self) -> Path:
        return self._database

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the connections and apply pending schema migrations."""
        if self._writer is not None:
            return
        writer_conn, reader_conns = await asyncio.to_thread(
            open_database,
            self._directory,
            self._database,
            synchronous=self._synchronous,
            readers=self._reader_count,
            migrations=self._migrations,
        )
        self._writer = Writer(writer_conn, max_batch=self._max_batch)
        self._readers = Readers(reader_conns, max_batch=self._max_batch)
        self._checkpointer = Checkpointer(
            connect(self._database, self._synchronous), catch_up=self._writer.catch_up
        )

    async def aclose(self) -> None:
        """Finish queued writes, end the threads, close the connections. Idempotent."""
        writer, readers = self._writer, self._readers
        self._writer = self._readers = None
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if readers is not None:
            await asyncio.to_thread(readers.stop)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` on the writer thread inside a transaction; return once it is committed."""
        if self._writer is None:
            raise StoreClosed("the store is not open")
        return await self._writer.submit(op)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on a reader connection in the reader pool."""
        if self._readers is None:
            raise StoreClosed("the store is not open")
        return await self._readers.submit(fn)

    async def _fetch(self, statement: Statement, convert: Callable[[Any], R]) -> tuple[R, ...]:
        return await self._read(lambda conn: tuple(map(convert, conn.execute(*statement))))

    # --- integrations -----------------------------------------------------------------------

    async def put_integration(
        self, integration_id: str, definition_json: str, *, created_at: datetime | None = None
    ) -> IntegrationRecord:
        when = created_at if created_at is not None else datetime.now(UTC)
        stamp = encode_time(when)

        def op(conn: sqlite3.Connection) -> IntegrationRecord:
            row = conn.execute(
                "INSERT INTO integrations (id, version, definition_json, created_at, deleted)"
                " SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, 0"
                " FROM integrations WHERE id = ?"
                " RETURNING id, version, definition_json, created_at, deleted",
                (integration_id, definition_json, stamp, integration_id),
            ).fetchone()
            return _integration(row)

        return await self._write(op)

    async def get_integration(
        self, integration_id: str, version: int | None = None
    ) -> IntegrationRecord | None:
        def fn(conn: sqlite3.Connection) -> IntegrationRecord | None:
            if version is None:
                row = conn.execute(
                    "SELECT id, version, definition_json, created_at, deleted FROM integrations"
                    " WHERE id = ? AND deleted = 0 ORDER BY version DESC LIMIT 1",
                    (integration_id,),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT id, version, definition_json, created_at, deleted FROM integrations"
                    " WHERE id = ? AND version = ? AND deleted = 0",
                    (integration_id, version),
                ).fetchone()
            return None if row is None else _integration(row)

        return await self._read(fn)

    async def list_integrations(
        self, *, after: str | None = None, limit: int | None = None
    ) -> tuple[IntegrationRecord, ...]:
        params = ("" if after is None else after, -1 if limit is None else limit)

        def fn(conn: sqlite3.Connection) -> tuple[IntegrationRecord, ...]:
            rows = conn.execute(LIST_INTEGRATIONS, params).fetchall()
            return tuple(_integration(row) for row in rows)

        return await self._read(fn)

    async def delete_integration(self, integration_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE integrations SET deleted = 1 WHERE id = ? AND deleted = 0",
                (integration_id,),
            )
            return cursor.rowcount > 0

        return await self._write(op)

    # --- installations ----------------------------------------------------------------------

    async def create_installation(self, record: InstallationRecord) -> InstallationRecord:
        params = ROWS.installation_params(record)

        def op(conn: sqlite3.Connection) -> InstallationRecord:
            try:
                conn.execute(INSERT_INSTALLATION, params)
            except sqlite3.IntegrityError as exc:
                raise Conflict(
                    f"installation {record.id!r} or its webhook token is already in use"
                ) from exc
            if record.enabled:
                _insert_numbers(conn, record)
            return record

        return await self._write(op)

    async def update_installation(self, record: InstallationRecord) -> InstallationRecord:
        params = ROWS.installation_params(record)
        # (id, …, created_at, updated_at) → the UPDATE's order: fields, updated_at, id
        update_params = (*params[1:10], params[11], params[12], params[0])

        def op(conn: sqlite3.Connection) -> InstallationRecord:
            try:
                row = conn.execute(UPDATE_INSTALLATION, update_params).fetchone()
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"the webhook token of {record.id!r} is already in use") from exc
            if row is None:
                raise RecordNotFound("installation", record.id)
            conn.execute("DELETE FROM installation_numbers WHERE installation_id = ?", (record.id,))
            if record.enabled:
                _insert_numbers(conn, record)
            return replace(record, created_at=decode_time(row[0]))

        return await self._write(op)

    async def get_installation(self, installation_id: str) -> InstallationRecord | None:
        def fn(conn: sqlite3.Connection) -> InstallationRecord | None:
            row = conn.execute(SELECT_INSTALLATION + " WHERE id = ?", (installation_id,)).fetchone()
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def find_installation_by_number(
        self, integration_id: str, number: str
    ) -> InstallationRecord | None:
        def fn(conn: sqlite3.Connection) -> InstallationRecord | None:
            row = conn.execute(
                SELECT_INSTALLATION_BY_NUMBER + " WHERE n.integration_id = ? AND n.number = ?",
                (integration_id, number),
            ).fetchone()
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def find_installations_for_number(
        self, org_id: str, number: str
    ) -> tuple[InstallationRecord, ...]:
        def fn(conn: sqlite3.Connection) -> tuple[InstallationRecord, ...]:
            cursor = conn.execute(
                SELECT_INSTALLATION_BY_NUMBER + " WHERE n.org_id = ? AND n.number = ?"
                " ORDER BY i.created_at, i.id",
                (org_id, number),
            )
            return tuple(_installation(row) for row in cursor)

        return await self._read(fn)

    async def find_installation_by_token_hash(
        self, integration_id: str, token_hash: str
    ) -> InstallationRecord | None:
        def fn(conn: sqlite3.Connection) -> InstallationRecord | None:
            row = conn.execute(
                SELECT_INSTALLATION + " WHERE integration_id = ? AND webhook_token_hash = ?",
                (integration_id, token_hash),
            ).fetchone()
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def count_installations(self, integration_id: str, *, enabled_only: bool = True) -> int:
        def fn(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM installations"
                " WHERE integration_id = ? AND (enabled = 1 OR ? = 0)",
                (integration_id, int(enabled_only)),
            ).fetchone()
            return int(row[0])

        return await self._read(fn)

    # --- messages ---------------------------------------------------------------------------

    async def claim_message(self, record: MessageRecord) -> tuple[MessageRecord, bool]:
        params = ROWS.message_params(record)
        key = record.idempotency_key

        def op(conn: sqlite3.Connection) -> tuple[MessageRecord, bool]:
            try:
                if key is None:
                    conn.execute(INSERT_MESSAGE, params)
                    return record, True
                if conn.execute(CLAIM_MESSAGE, params).rowcount == 1:
                    return record, True
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"message {record.id!r} already exists") from exc
            row = conn.execute(
                SELECT_MESSAGE + " WHERE org_id = ? AND idempotency_key = ?",
                (record.org_id, key),
            ).fetchone()
            return _message(row), False

        return await self._write(op)

    async def update_message(
        self,
        message_id: str,
        *,
        state: MessageState | Unset = UNSET,
        provider_message_id: str | Unset | None = UNSET,
        provider_status: int | Unset | None = UNSET,
        attempts: int | Unset = UNSET,
        error: str | Unset | None = UNSET,
        reply_json: str | Unset | None = UNSET,
        updated_at: datetime | None = None,
        provider_message_ids: Sequence[str] | Unset = UNSET,
    ) -> MessageRecord:
        when = updated_at if updated_at is not None else datetime.now(UTC)
        params = (
            *_change(state if isinstance(state, Unset) else MessageState(state).value),
            *_change(provider_message_id),
            *_change(provider_status),
            *_change(attempts),
            *_change(error),
            *_change(reply_json),
            *_change(
                provider_message_ids
                if isinstance(provider_message_ids, Unset)
                else encode_ids(provider_message_ids)
            ),
            encode_time(when),
            message_id,
        )

        def op(conn: sqlite3.Connection) -> MessageRecord:
            row = conn.execute(UPDATE_MESSAGE, params).fetchone()
            if row is None:
                raise RecordNotFound("message", message_id)
            message = _message(row)
            if not isinstance(provider_message_ids, Unset):
                parts = ROWS.part_params(message, provider_message_ids)
                conn.executemany(INSERT_MESSAGE_PART, parts)
            return message

        return await self._write(op)

    async def get_message(self, message_id: str) -> MessageRecord | None:
        def fn(conn: sqlite3.Connection) -> MessageRecord | None:
            row = conn.execute(SELECT_MESSAGE + " WHERE id = ?", (message_id,)).fetchone()
            return None if row is None else _message(row)

        return await self._read(fn)

    async def get_message_by_idempotency_key(
        self, org_id: str, idempotency_key: str
    ) -> MessageRecord | None:
        def fn(conn: sqlite3.Connection) -> MessageRecord | None:
            row = conn.execute(
                SELECT_MESSAGE + " WHERE org_id = ? AND idempotency_key = ?",
                (org_id, idempotency_key),
            ).fetchone()
            return None if row is None else _message(row)

        return await self._read(fn)

    async def find_message_by_provider_id(
        self, integration_id: str, provider_message_id: str
    ) -> MessageRecord | None:
        def fn(conn: sqlite3.Connection) -> MessageRecord | None:
            row = conn.execute(
                SELECT_MESSAGE + " WHERE integration_id = ? AND provider_message_id = ?"
                " ORDER BY created_at DESC, id DESC LIMIT 1",
                (integration_id, provider_message_id),
            ).fetchone()
            if row is None:  # (ext) a later part of a send of several requests
                row = conn.execute(SELECT_MESSAGE_BY_PART, (integration_id, provider_message_id))
                row = row.fetchone()
            return None if row is None else _message(row)

        return await self._read(fn)

    # --- installations: subscription state ----------------------------------------------------

    async def set_subscription(
        self, installation_id: str, *, state: str, error: str | None
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            changed = conn.execute(
                "UPDATE installations SET subscription_state = ?, subscription_error = ?"
                " WHERE id = ?",
                (state, error, installation_id),
            ).rowcount
            if changed == 0:
                raise RecordNotFound("installation", installation_id)

        await self._write(op)

    # --- installations: values kept beside the record ---------------------------------------

    async def put_installation_value(self, installation_id: str, name: str, value: str) -> None:
        now = encode_time(datetime.now(UTC))

        def op(conn: sqlite3.Connection) -> None:
            if not conn.execute(
                "SELECT 1 FROM installations WHERE id = ?", (installation_id,)
            ).fetchone():
                raise RecordNotFound("installation", installation_id)
            conn.execute(
                "INSERT INTO installation_secrets (installation_id, name, value, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (installation_id, name)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (installation_id, name, value, now),
            )

        await self._write(op)

    async def get_installation_value(self, installation_id: str, name: str) -> str | None:
        def fn(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT value FROM installation_secrets WHERE installation_id = ? AND name = ?",
                (installation_id, name),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._read(fn)

    # --- coordination ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            yield

    # --- OAuth2 authorization states ------------------------------------------------------

    async def save_authorization_state(self, key: str, value: str, expires_at: datetime) -> None:
        stamp = encode_time(expires_at)
        stale = encode_time(datetime.now(UTC) - timedelta(hours=1))

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM authorization_states WHERE expires_at < ?", (stale,))
            conn.execute(
                "INSERT INTO authorization_states (key, value, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                " expires_at = excluded.expires_at, used = 0",
                (key, value, stamp),
            )

        await self._write(op)

    async def consume_authorization_state(self, key: str) -> tuple[str, bool] | None:
        def op(conn: sqlite3.Connection) -> tuple[str, bool] | None:
            row = conn.execute(
                "SELECT value, used FROM authorization_states WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE authorization_states SET used = 1 WHERE key = ?", (key,))
            return str(row[0]), not row[1]

        return await self._write(op)
