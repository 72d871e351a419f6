"""The :class:`PostgresStore` itself: lifecycle, running statements on the pool, integrations,
installations, messages and the small keyed values (the inbound path is :mod:`._inbound`, the
send queue :mod:`._queue`, media :mod:`._media`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import asyncpg

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
    StoreError,
    Unset,
)
from .._keyset_sql import KeysetListings, Statement
from .._migrations import Migration, load_migrations
from .._rows import aware_time, encode_ids, encode_time, utc_time
from ._batcher import IngestBatcher
from ._exchanges import ExchangeMethods
from ._inbound import InboundMethods
from ._listener import EventListener
from ._media import MediaMethods
from ._migrate import apply_migrations
from ._opt_outs import OptOutMethods
from ._pool import (
    CONNECT_TIMEOUT_S,
    CONNECTION_ERRORS,
    PooledConnection,
    RunAgain,
    keep_session,
    row_count,
    run_on_pool,
)
from ._queue import QueueMethods
from ._sql import (
    CLAIM_MESSAGE,
    DIALECT,
    INSERT_INSTALLATION,
    INSERT_MESSAGE,
    INSERT_MESSAGE_PART,
    INSERT_NUMBERS,
    INTEGRATION_COLUMN_LIST,
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

__all__ = ["PostgresStore"]

T = TypeVar("T")
R = TypeVar("R")

# Transaction-level advisory locks take two int4 keys: (kind, hashtext(id)).
_LOCK_INTEGRATION: Final = 0x6D73_6701

_integration = ROWS.integration
_installation = ROWS.installation
_message = ROWS.message


def _change(value: object) -> tuple[bool, object]:
    return (False, None) if value is UNSET else (True, value)


async def _insert_numbers(conn: PooledConnection, record: InstallationRecord) -> None:
    """Record the numbers an enabled installation holds; the primary key decides who wins.

    Raises :class:`NumberTaken` for the first number (in the record's order) that another
    installation holds, or that the record assigns twice; the caller's transaction then rolls
    back everything of this write.
    """
    numbers = [assignment.number for assignment in record.numbers]
    if not numbers:
        return
    rows = await conn.fetch(
        INSERT_NUMBERS, record.integration_id, numbers, record.id, record.org_id
    )
    inserted = {row[0] for row in rows}
    seen: set[str] = set()
    for number in numbers:
        if number in seen:
            raise NumberTaken(number, record.id)
        seen.add(number)
        if number not in inserted:
            holder = await conn.fetchval(
                "SELECT installation_id FROM installation_numbers"
                " WHERE integration_id = $1 AND number = $2",
                record.integration_id,
                number,
            )
            if holder is None:  # its holder let it go meanwhile: decide again from scratch
                raise RunAgain
            raise NumberTaken(number, holder)


class PostgresStore(
    KeysetListings, QueueMethods, InboundMethods, MediaMethods, OptOutMethods, ExchangeMethods
):
    """The :class:`~server.store.Store` on a PostgreSQL database (``postgresql://…`` DSN).

    ``min_size``/``max_size`` bound the pool's connections; several replicas may open stores on
    one database at once. Concurrent ingests go in transactions of up to ``ingest_batch`` (see
    ``_batcher.IngestBatcher``); a purge deletes ``purge_chunk`` rows per statement.
    """

    _DIALECT = DIALECT
    _ROWS = ROWS
    _SELECTS = SELECTS

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        ingest_batch: int = 256,
        purge_chunk: int = 5000,
        migrations: Sequence[Migration] | None = None,
    ) -> None:
        if min_size < 0 or max_size < 1 or min_size > max_size:
            raise ValueError("need 0 <= min_size <= max_size and max_size >= 1")
        if purge_chunk < 1 or ingest_batch < 1:
            raise ValueError("ingest_batch and purge_chunk must be at least 1")
        self._purge_chunk = purge_chunk
        self._closing = False
        self._ingests = IngestBatcher(self._ingest_batch, self._ingest_one, max_batch=ingest_batch)
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._migrations = migrations
        self._pool: Any = None  # asyncpg.Pool
        self._listeners: set[EventListener] = set()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and apply pending schema migrations (under :data:`MIGRATION_LOCK`)."""
        if self._pool is not None:
            return
        migrations = self._migrations
        if migrations is None:
            migrations = load_migrations(dialect="postgres")
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                reset=keep_session,
                timeout=CONNECT_TIMEOUT_S,
            )
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await apply_migrations(conn, migrations)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, (*CONNECTION_ERRORS, asyncpg.PostgresError)):
                raise StoreError(f"cannot open the PostgreSQL store: {exc}") from exc
            raise
        self._pool = pool
        self._closing = False

    async def aclose(self) -> None:
        """Finish the queued ingests, stop the listeners, let running calls finish, close the
        connections. Idempotent."""
        self._closing = True
        await self._ingests.wait_idle()
        pool, self._pool = self._pool, None
        listeners, self._listeners = self._listeners, set()
        for listener in listeners:
            await listener.aclose()
        if pool is not None:
            await pool.close()

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

    async def listen_events(self, on_events: Callable[[], object]) -> EventListener:
        """Call ``on_events()`` whenever an ingest on any replica committed events.

        The wake-up of the event hub across replicas: every transaction that appends events
        sends ``NOTIFY msgbridge_events`` (delivered at its commit), and this LISTENs on a
        dedicated connection. A lost notification only delays a reader that also re-reads the
        table now and then; after a reconnection ``on_events`` is called once anyway. The
        listener ends with :meth:`EventListener.aclose` or with :meth:`aclose`.
        """
        if self._pool is None:
            raise StoreClosed("the store is not open")
        listener = EventListener(self._dsn, on_events)
        await listener.start()
        self._listeners.add(listener)
        return listener

    async def _read(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        return await run_on_pool(lambda: self._pool, fn, transaction=False, read_only=True)

    async def _fetch(self, statement: Statement, convert: Callable[[Any], R]) -> tuple[R, ...]:
        async def fn(conn: PooledConnection) -> tuple[R, ...]:
            return tuple(map(convert, await conn.fetch(statement.sql, *statement.params)))

        return await self._read(fn)

    async def _statement(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        """Run ``fn``, whose each statement is a write that commits on its own."""
        return await run_on_pool(lambda: self._pool, fn, transaction=False)

    async def _write(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        """Run ``fn`` in a transaction; return once it is committed."""
        return await run_on_pool(lambda: self._pool, fn, transaction=True)

    # --- integrations -----------------------------------------------------------------------

    async def put_integration(
        self, integration_id: str, definition_json: str, *, created_at: datetime | None = None
    ) -> IntegrationRecord:
        when = aware_time(created_at) if created_at is not None else datetime.now(UTC)

        async def op(conn: PooledConnection) -> IntegrationRecord:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_INTEGRATION, integration_id
            )
            row = await conn.fetchrow(
                "INSERT INTO integrations (id, version, definition_json, created_at, deleted)"
                " SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, false"
                " FROM integrations WHERE id = $1"
                " RETURNING id, version, definition_json, created_at, deleted",
                integration_id,
                definition_json,
                when,
            )
            return _integration(row)

        return await self._write(op)

    async def get_integration(
        self, integration_id: str, version: int | None = None
    ) -> IntegrationRecord | None:
        async def fn(conn: PooledConnection) -> IntegrationRecord | None:
            if version is None:
                row = await conn.fetchrow(
                    f"SELECT {INTEGRATION_COLUMN_LIST} FROM integrations"  # noqa: S608
                    " WHERE id = $1 AND NOT deleted ORDER BY version DESC LIMIT 1",
                    integration_id,
                )
            else:
                row = await conn.fetchrow(
                    f"SELECT {INTEGRATION_COLUMN_LIST} FROM integrations"  # noqa: S608
                    " WHERE id = $1 AND version = $2 AND NOT deleted",
                    integration_id,
                    version,
                )
            return None if row is None else _integration(row)

        return await self._read(fn)

    async def list_integrations(
        self, *, after: str | None = None, limit: int | None = None
    ) -> tuple[IntegrationRecord, ...]:
        async def fn(conn: PooledConnection) -> tuple[IntegrationRecord, ...]:
            rows = await conn.fetch(LIST_INTEGRATIONS, "" if after is None else after, limit)
            return tuple(_integration(row) for row in rows)

        return await self._read(fn)

    async def delete_integration(self, integration_id: str) -> bool:
        async def op(conn: PooledConnection) -> bool:
            status = await conn.execute(
                "UPDATE integrations SET deleted = true WHERE id = $1 AND NOT deleted",
                integration_id,
            )
            return row_count(status) > 0

        return await self._statement(op)

    # --- installations ----------------------------------------------------------------------

    async def create_installation(self, record: InstallationRecord) -> InstallationRecord:
        params = ROWS.installation_params(record)

        async def op(conn: PooledConnection) -> InstallationRecord:
            try:
                await conn.execute(INSERT_INSTALLATION, *params)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(
                    f"installation {record.id!r} or its webhook token is already in use"
                ) from exc
            if record.enabled:
                await _insert_numbers(conn, record)
            return record

        return await self._write(op)

    async def update_installation(self, record: InstallationRecord) -> InstallationRecord:
        params = ROWS.installation_params(record)
        # (id, …, created_at, updated_at) → the UPDATE's: id, fields, updated_at
        update_params = (*params[:10], params[11], params[12])

        async def op(conn: PooledConnection) -> InstallationRecord:
            try:
                created_at = await conn.fetchval(UPDATE_INSTALLATION, *update_params)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"the webhook token of {record.id!r} is already in use") from exc
            if created_at is None:
                raise RecordNotFound("installation", record.id)
            await conn.execute(
                "DELETE FROM installation_numbers WHERE installation_id = $1", record.id
            )
            if record.enabled:
                await _insert_numbers(conn, record)
            return replace(record, created_at=utc_time(created_at))

        return await self._write(op)

    async def get_installation(self, installation_id: str) -> InstallationRecord | None:
        async def fn(conn: PooledConnection) -> InstallationRecord | None:
            row = await conn.fetchrow(SELECT_INSTALLATION + " WHERE i.id = $1", installation_id)
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def find_installation_by_number(
        self, integration_id: str, number: str
    ) -> InstallationRecord | None:
        async def fn(conn: PooledConnection) -> InstallationRecord | None:
            row = await conn.fetchrow(
                SELECT_INSTALLATION_BY_NUMBER + " WHERE n.integration_id = $1 AND n.number = $2",
                integration_id,
                number,
            )
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def find_installations_for_number(
        self, org_id: str, number: str
    ) -> tuple[InstallationRecord, ...]:
        async def fn(conn: PooledConnection) -> tuple[InstallationRecord, ...]:
            rows = await conn.fetch(
                SELECT_INSTALLATION_BY_NUMBER + " WHERE n.org_id = $1 AND n.number = $2"
                " ORDER BY i.created_at, i.id",
                org_id,
                number,
            )
            return tuple(_installation(row) for row in rows)

        return await self._read(fn)

    async def find_installation_by_token_hash(
        self, integration_id: str, token_hash: str
    ) -> InstallationRecord | None:
        async def fn(conn: PooledConnection) -> InstallationRecord | None:
            row = await conn.fetchrow(
                SELECT_INSTALLATION + " WHERE i.integration_id = $1 AND i.webhook_token_hash = $2",
                integration_id,
                token_hash,
            )
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def count_installations(self, integration_id: str, *, enabled_only: bool = True) -> int:
        async def fn(conn: PooledConnection) -> int:
            count = await conn.fetchval(
                "SELECT COUNT(*) FROM installations"
                " WHERE integration_id = $1 AND (enabled OR NOT $2)",
                integration_id,
                enabled_only,
            )
            return int(count)

        return await self._read(fn)

    # --- messages ---------------------------------------------------------------------------

    async def claim_message(self, record: MessageRecord) -> tuple[MessageRecord, bool]:
        params = ROWS.message_params(record)
        key = record.idempotency_key

        async def op(conn: PooledConnection) -> tuple[MessageRecord, bool]:
            # Single statements, each its own transaction: after an ON CONFLICT that inserted
            # nothing, the holder of the key is committed, and the next statement sees it.
            try:
                if key is None:
                    await conn.execute(INSERT_MESSAGE, *params)
                    return record, True
                if await conn.fetchval(CLAIM_MESSAGE, *params) is not None:
                    return record, True
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"message {record.id!r} already exists") from exc
            row = await conn.fetchrow(
                SELECT_MESSAGE + " WHERE org_id = $1 AND idempotency_key = $2",
                record.org_id,
                key,
            )
            if row is None:  # claimed and gone between the two statements: claim again
                raise RunAgain
            return _message(row), False

        return await self._statement(op)

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
        when = aware_time(updated_at) if updated_at is not None else datetime.now(UTC)
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
            when,
            message_id,
        )

        async def op(conn: PooledConnection) -> MessageRecord:
            row = await conn.fetchrow(UPDATE_MESSAGE, *params)
            if row is None:
                raise RecordNotFound("message", message_id)
            return _message(row)

        if isinstance(provider_message_ids, Unset):
            return await self._statement(op)

        async def with_parts(conn: PooledConnection) -> MessageRecord:
            message = await op(conn)
            parts = ROWS.part_params(message, provider_message_ids)
            if parts:
                await conn.executemany(INSERT_MESSAGE_PART, parts)
            return message

        return await self._write(with_parts)

    async def get_message(self, message_id: str) -> MessageRecord | None:
        async def fn(conn: PooledConnection) -> MessageRecord | None:
            row = await conn.fetchrow(SELECT_MESSAGE + " WHERE id = $1", message_id)
            return None if row is None else _message(row)

        return await self._read(fn)

    async def get_message_by_idempotency_key(
        self, org_id: str, idempotency_key: str
    ) -> MessageRecord | None:
        async def fn(conn: PooledConnection) -> MessageRecord | None:
            row = await conn.fetchrow(
                SELECT_MESSAGE + " WHERE org_id = $1 AND idempotency_key = $2",
                org_id,
                idempotency_key,
            )
            return None if row is None else _message(row)

        return await self._read(fn)

    async def find_message_by_provider_id(
        self, integration_id: str, provider_message_id: str
    ) -> MessageRecord | None:
        async def fn(conn: PooledConnection) -> MessageRecord | None:
            row = await conn.fetchrow(
                SELECT_MESSAGE + " WHERE integration_id = $1 AND provider_message_id = $2"
                " ORDER BY created_at DESC, id DESC LIMIT 1",
                integration_id,
                provider_message_id,
            )
            if row is None:  # (ext) a later part of a send of several requests
                row = await conn.fetchrow(
                    SELECT_MESSAGE_BY_PART, integration_id, provider_message_id
                )
            return None if row is None else _message(row)

        return await self._read(fn)

    # --- installations: subscription state ----------------------------------------------------

    async def set_subscription(
        self, installation_id: str, *, state: str, error: str | None
    ) -> None:
        async def op(conn: PooledConnection) -> None:
            status = await conn.execute(
                "UPDATE installations SET subscription_state = $1, subscription_error = $2"
                " WHERE id = $3",
                state,
                error,
                installation_id,
            )
            if row_count(status) == 0:
                raise RecordNotFound("installation", installation_id)

        await self._statement(op)

    # --- installations: values kept beside the record ---------------------------------------

    async def put_installation_value(self, installation_id: str, name: str, value: str) -> None:
        now = encode_time(datetime.now(UTC))

        async def op(conn: PooledConnection) -> None:
            try:
                await conn.execute(
                    "INSERT INTO installation_secrets (installation_id, name, value, updated_at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (installation_id, name)"
                    " DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
                    installation_id,
                    name,
                    value,
                    now,
                )
            except asyncpg.ForeignKeyViolationError:
                raise RecordNotFound("installation", installation_id) from None

        await self._statement(op)

    async def get_installation_value(self, installation_id: str, name: str) -> str | None:
        async def op(conn: PooledConnection) -> str | None:
            value = await conn.fetchval(
                "SELECT value FROM installation_secrets WHERE installation_id = $1 AND name = $2",
                installation_id,
                name,
            )
            return None if value is None else str(value)

        return await self._statement(op)

    # --- coordination ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """A session advisory lock on a pooled connection kept for the duration."""
        if self._pool is None:
            raise StoreClosed("the store is not open")
        try:
            conn = await self._pool.acquire()
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot take the lock {name!r}: {exc}") from exc
        try:
            await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", name)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", name)
        finally:
            await self._pool.release(conn)

    # --- OAuth2 authorization states ------------------------------------------------------

    async def save_authorization_state(self, key: str, value: str, expires_at: datetime) -> None:
        stamp = encode_time(expires_at)
        stale = encode_time(datetime.now(UTC) - timedelta(hours=1))

        async def op(conn: PooledConnection) -> None:
            await conn.execute("DELETE FROM authorization_states WHERE expires_at < $1", stale)
            await conn.execute(
                "INSERT INTO authorization_states (key, value, expires_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
                " expires_at = EXCLUDED.expires_at, used = FALSE",
                key,
                value,
                stamp,
            )

        await self._statement(op)

    async def consume_authorization_state(self, key: str) -> tuple[str, bool] | None:
        async def op(conn: PooledConnection) -> tuple[str, bool] | None:
            # The row lock makes concurrent consumers of one state take turns: one sees it unused.
            row = await conn.fetchrow(
                "WITH old AS (SELECT key, used FROM authorization_states WHERE key = $1"
                " FOR UPDATE) UPDATE authorization_states AS s SET used = TRUE FROM old"
                " WHERE s.key = old.key RETURNING s.value, old.used",
                key,
            )
            if row is None:
                return None
            return str(row[0]), not row[1]

        return await self._statement(op)
