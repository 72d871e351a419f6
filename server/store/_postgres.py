"""The PostgreSQL store: the same :class:`~server.store.Store` on an asyncpg connection pool.

For several msgbridge replicas on one database. Every method is one round of statements on a
pooled connection; a method that writes more than one row runs them in one transaction, so a
write that returned is committed, and the database — not this process — decides every race:

- **Versions** of an integration are counted under a transaction-level advisory lock on the
  integration id (``pg_advisory_xact_lock``), so concurrent registrations on any replica get
  1, 2, 3, … without a gap or a clash.
- **Numbers**: the primary key of ``installation_numbers`` is the rule "one enabled installation
  of an integration holds a number"; the numbers are inserted with ``ON CONFLICT DO NOTHING`` and
  a number that was not inserted is reported as :class:`NumberTaken` with its holder (the
  transaction is then rolled back, so nothing of the refused installation is kept).
- **Idempotency keys**: ``INSERT … ON CONFLICT (org_id, idempotency_key) DO NOTHING``; when it
  inserted nothing, the row holding the key is committed (PostgreSQL waited for its transaction)
  and is read back and returned.

Errors. Every asyncpg error becomes a :class:`StoreError`: a unique violation a
:class:`Conflict`, a lost or refused connection a plain :class:`StoreError`. A transaction that
PostgreSQL rolled back for a serialization failure or a deadlock is run again (a few times): it
left nothing behind. A read that lost its connection is run again once; a write is not (its
commit may have happened).

Times are ``timestamptz`` (microseconds, UTC) and identifiers use the ``"C"`` collation, so they
sort by code point as in SQLite. PostgreSQL text cannot hold U+0000: in free-text fields (a
message's text and error, an installation's subscription error) the store writes U+FFFD in its
place rather than failing the write; maps are JSON text, where JSON escapes it.

Migrations: ``migrations/postgres/NNNN_name.sql``, numbered like the SQLite ones and recorded in
the same ``schema_migrations`` table. :meth:`PostgresStore.open` applies the pending ones while
holding a session-level advisory lock (:data:`MIGRATION_LOCK`), each in its own transaction, so
replicas starting together migrate once: the others wait for the lock, then find nothing to do.

The pool does not reset a connection when it is returned (no ``RESET ALL`` round trip per call):
the store never changes session state and takes only transaction-level locks, except the
migration lock, which it releases itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import asyncpg

from ._base import (
    UNSET,
    Conflict,
    InstallationRecord,
    IntegrationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    NotFound,
    NumberTaken,
    StoreClosed,
    StoreError,
    Unset,
)
from ._codec import decode_map, decode_numbers, encode_map, encode_numbers
from ._migrations import Migration, MigrationError, load_migrations, pending_migrations

__all__ = ["EVENTS_CHANNEL", "MIGRATION_LOCK", "EventListener", "PostgresStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Connection = Any  # asyncpg.Connection (asyncpg ships no type hints)
Row = Any  # asyncpg.Record

EVENTS_CHANNEL: Final = "msgbridge_events"
"""The ``NOTIFY`` channel an ingest signals on when it committed events (payload: the cursor)."""

MIGRATION_LOCK: Final = 0x6D73_6762_0000_0001
"""The session advisory lock (one bigint key) held while migrating: "msgb", then 1."""

# Transaction-level advisory locks take two int4 keys: (kind, hashtext(id)).
_LOCK_INTEGRATION: Final = 0x6D73_6701

_ROLLBACK_RETRIES: Final = 5
_CONNECT_TIMEOUT_S: Final = 10.0


# ---------------------------------------------------------------------------------------------
# Values


def _aware(value: datetime) -> datetime:
    """A time as PostgreSQL gets it; a naive datetime is refused (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: the store keeps UTC times only")
    return value


def _utc(value: datetime) -> datetime:
    """A time as PostgreSQL returned it (UTC already) with the same tzinfo as ``datetime.UTC``."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _free_text(value: str) -> str:
    """Free text PostgreSQL can store: U+0000 becomes U+FFFD (text columns refuse U+0000)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _free_text_or_none(value: str | None) -> str | None:
    return None if value is None else _free_text(value)


# ---------------------------------------------------------------------------------------------
# Rows

_INTEGRATION_COLUMNS = "id, version, definition_json, created_at, deleted"


def _integration(row: Row) -> IntegrationRecord:
    return IntegrationRecord(
        id=row[0],
        version=row[1],
        definition_json=row[2],
        created_at=_utc(row[3]),
        deleted=row[4],
    )


_INSTALLATION_COLUMNS = """
    i.id, i.org_id, i.integration_id, i.properties_json, i.numbers_json, i.default_region,
    i.enabled, i.webhook_token_hash, i.subscription_state, i.subscription_error, i.created_at,
    i.updated_at
"""


def _installation(row: Row) -> InstallationRecord:
    return InstallationRecord(
        id=row[0],
        org_id=row[1],
        integration_id=row[2],
        properties=decode_map(row[3]),
        numbers=decode_numbers(row[4]),
        default_region=row[5],
        enabled=row[6],
        webhook_token_hash=row[7],
        subscription_state=row[8],
        subscription_error=row[9],
        created_at=_utc(row[10]),
        updated_at=_utc(row[11]),
    )


def _installation_params(record: InstallationRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.org_id,
        record.integration_id,
        encode_map(record.properties),
        encode_numbers(record.numbers),
        record.default_region,
        record.enabled,
        record.webhook_token_hash,
        record.subscription_state,
        _free_text_or_none(record.subscription_error),
        _aware(record.created_at),
        _aware(record.updated_at),
    )


_MESSAGE_COLUMNS = """
    id, org_id, installation_id, integration_id, kind, from_number, to_number, text, media_url,
    state, provider_message_id, provider_status, attempts, error, metadata_json, idempotency_key,
    request_fingerprint, reply_json, created_at, updated_at
"""


def _message(row: Row) -> MessageRecord:
    return MessageRecord(
        id=row[0],
        org_id=row[1],
        installation_id=row[2],
        integration_id=row[3],
        kind=MessageKind(row[4]),
        from_number=row[5],
        to_number=row[6],
        text=row[7],
        media_url=row[8],
        state=MessageState(row[9]),
        provider_message_id=row[10],
        provider_status=row[11],
        attempts=row[12],
        error=row[13],
        metadata=decode_map(row[14]),
        idempotency_key=row[15],
        request_fingerprint=row[16],
        reply_json=row[17],
        created_at=_utc(row[18]),
        updated_at=_utc(row[19]),
    )


def _message_params(record: MessageRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.org_id,
        record.installation_id,
        record.integration_id,
        MessageKind(record.kind).value,
        record.from_number,
        record.to_number,
        _free_text(record.text),
        record.media_url,
        MessageState(record.state).value,
        record.provider_message_id,
        record.provider_status,
        record.attempts,
        _free_text_or_none(record.error),
        encode_map(record.metadata),
        record.idempotency_key,
        record.request_fingerprint,
        record.reply_json,
        _aware(record.created_at),
        _aware(record.updated_at),
    )


# Statements are literal text, so asyncpg prepares each once per connection and reuses it.

_SELECT_INSTALLATION = f"SELECT {_INSTALLATION_COLUMNS} FROM installations AS i"  # noqa: S608

_SELECT_INSTALLATION_BY_NUMBER = f"""
SELECT {_INSTALLATION_COLUMNS}
FROM installation_numbers AS n JOIN installations AS i ON i.id = n.installation_id
"""  # noqa: S608

_INSERT_INSTALLATION = """
INSERT INTO installations (
    id, org_id, integration_id, properties_json, numbers_json, default_region, enabled,
    webhook_token_hash, subscription_state, subscription_error, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""

_UPDATE_INSTALLATION = """
UPDATE installations SET
    org_id = $2, integration_id = $3, properties_json = $4, numbers_json = $5,
    default_region = $6, enabled = $7, webhook_token_hash = $8, subscription_state = $9,
    subscription_error = $10, updated_at = $11
WHERE id = $1
RETURNING created_at
"""

# Numbers in the record's order; the ones another enabled installation holds are not inserted.
_INSERT_NUMBERS = """
INSERT INTO installation_numbers (integration_id, number, installation_id, org_id)
SELECT $1, number, $3, $4 FROM unnest($2::text[]) AS given (number)
ON CONFLICT (integration_id, number) DO NOTHING
RETURNING number
"""

_SELECT_MESSAGE = f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608

_INSERT_MESSAGE = """
INSERT INTO messages (
    id, org_id, installation_id, integration_id, kind, from_number, to_number, text, media_url,
    state, provider_message_id, provider_status, attempts, error, metadata_json, idempotency_key,
    request_fingerprint, reply_json, created_at, updated_at
) VALUES (
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20
)
"""

_CLAIM_MESSAGE = (
    _INSERT_MESSAGE
    + """
ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id
"""
)

# Each field comes with a flag: true = set it to the value, false = keep it.
_UPDATE_MESSAGE = f"""
UPDATE messages SET
    state = CASE WHEN $1 THEN $2 ELSE state END,
    provider_message_id = CASE WHEN $3 THEN $4 ELSE provider_message_id END,
    provider_status = CASE WHEN $5 THEN $6::integer ELSE provider_status END,
    attempts = CASE WHEN $7 THEN $8::integer ELSE attempts END,
    error = CASE WHEN $9 THEN $10 ELSE error END,
    reply_json = CASE WHEN $11 THEN $12 ELSE reply_json END,
    updated_at = $13
WHERE id = $14
RETURNING {_MESSAGE_COLUMNS}
"""  # noqa: S608


def _change(value: object) -> tuple[bool, object]:
    return (False, None) if value is UNSET else (True, value)


async def _insert_numbers(conn: Connection, record: InstallationRecord) -> None:
    """Record the numbers an enabled installation holds; the primary key decides who wins.

    Raises :class:`NumberTaken` for the first number (in the record's order) that another
    installation holds, or that the record assigns twice; the caller's transaction then rolls
    back everything of this write.
    """
    numbers = [assignment.number for assignment in record.numbers]
    if not numbers:
        return
    rows = await conn.fetch(
        _INSERT_NUMBERS, record.integration_id, numbers, record.id, record.org_id
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
                raise _RunAgain
            raise NumberTaken(number, holder)


# ---------------------------------------------------------------------------------------------
# Errors


class _RunAgain(Exception):
    """Raised inside a transaction to roll it back and run it again."""


_CONNECTION_ERRORS: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


def _as_store_error(exc: Exception) -> StoreError:
    if isinstance(exc, asyncpg.UniqueViolationError):
        constraint = getattr(exc, "constraint_name", None) or "a unique key"
        error: StoreError = Conflict(f"already in use ({constraint})")
    else:
        error = StoreError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


# ---------------------------------------------------------------------------------------------
# LISTEN


class EventListener:
    """A ``LISTEN`` on :data:`EVENTS_CHANNEL` on a connection of its own, kept alive.

    ``on_events()`` is called (on the event loop, with no argument) after every notification,
    and also each time the listening connection was re-established after a loss, because
    notifications sent meanwhile are gone: the callback is a wake-up, the events table is the
    truth. The connection is checked every ``check_s`` seconds, so a silently dead one is noticed
    and replaced. Get one from :meth:`PostgresStore.listen_events`; end it with :meth:`aclose`.
    """

    def __init__(
        self,
        dsn: str,
        on_events: Callable[[], object],
        *,
        check_s: float = 10.0,
        retry_s: float = 0.2,
        max_retry_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._on_events = on_events
        self._check_s = check_s
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self._task: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Listen; returns once listening. Raises :class:`StoreError` if the first try fails."""
        loop = asyncio.get_running_loop()
        self._listening = loop.create_future()
        self._task = asyncio.create_task(self._run(), name="msgbridge-store-listen")
        try:
            await asyncio.shield(self._listening)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop listening and close the connection. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self._wake()

    def _wake(self) -> None:
        try:
            self._on_events()
        except Exception:
            logger.exception("event listener callback failed")

    async def _run(self) -> None:
        delay = self._retry_s
        first = True
        while True:
            conn: Connection | None = None
            try:
                lost = asyncio.Event()
                conn = await asyncpg.connect(self._dsn, timeout=_CONNECT_TIMEOUT_S)
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(EVENTS_CHANNEL, self._notified)
                if first:
                    first = False
                    self._settle(None)
                else:
                    logger.info("listening for events again")
                    self._wake()  # what was notified while the connection was down is missed
                delay = self._retry_s
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self._check_s)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), self._check_s)
                logger.warning("the event listener's connection was closed")
            except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                if first:
                    self._settle(StoreError(f"cannot listen for events: {exc}"))
                    return
                logger.warning("event listener connection lost: %s", type(exc).__name__)
            finally:
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry_s)

    def _settle(self, error: StoreError | None) -> None:
        if self._listening is not None and not self._listening.done():
            if error is None:
                self._listening.set_result(None)
            else:
                self._listening.set_exception(error)


# ---------------------------------------------------------------------------------------------
# The store


async def _keep_session(conn: Connection) -> None:
    """The pool's reset: nothing to undo (see the module's docstring)."""


class PostgresStore:
    """The :class:`~server.store.Store` on a PostgreSQL database (``postgresql://…`` DSN).

    ``min_size``/``max_size`` bound the pool's connections; several replicas may open stores on
    one database at once.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        migrations: Sequence[Migration] | None = None,
    ) -> None:
        if min_size < 0 or max_size < 1 or min_size > max_size:
            raise ValueError("need 0 <= min_size <= max_size and max_size >= 1")
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._migrations = migrations
        self._pool: Any = None  # asyncpg.Pool
        self._listeners: set[EventListener] = set()

    # --- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
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
                reset=_keep_session,
                timeout=_CONNECT_TIMEOUT_S,
            )
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await _apply_migrations(conn, migrations)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, (*_CONNECTION_ERRORS, asyncpg.PostgresError)):
                raise StoreError(f"cannot open the PostgreSQL store: {exc}") from exc
            raise
        self._pool = pool

    async def close(self) -> None:
        """Stop the listeners, let running calls finish, close the connections. Idempotent."""
        pool, self._pool = self._pool, None
        listeners, self._listeners = self._listeners, set()
        for listener in listeners:
            await listener.aclose()
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def listen_events(self, on_events: Callable[[], object]) -> EventListener:
        """Call ``on_events()`` whenever an ingest on any replica committed events.

        The wake-up of the event hub across replicas: every transaction that appends events
        sends ``NOTIFY msgbridge_events`` (delivered at its commit), and this LISTENs on a
        dedicated connection. A lost notification only delays a reader that also re-reads the
        table now and then; after a reconnection ``on_events`` is called once anyway. The
        listener ends with :meth:`EventListener.aclose` or with :meth:`close`.
        """
        if self._pool is None:
            raise StoreClosed("the store is not open")
        listener = EventListener(self._dsn, on_events)
        await listener.start()
        self._listeners.add(listener)
        return listener

    async def _run(
        self,
        fn: Callable[[Connection], Awaitable[T]],
        *,
        transaction: bool,
        read_only: bool = False,
    ) -> T:
        """Run ``fn`` on a pooled connection (in a transaction when asked); map the errors.

        ``fn`` may raise :class:`_RunAgain` to be run again from the start (its transaction, if
        any, rolled back). A ``read_only`` one is also run again once after a lost connection.
        """
        retried_read = False
        attempt = 0
        while True:
            pool = self._pool
            if pool is None:
                raise StoreClosed("the store is not open")
            attempt += 1
            try:
                async with pool.acquire() as conn:
                    if not transaction:
                        return await fn(conn)
                    async with conn.transaction():
                        return await fn(conn)
            except StoreError:
                raise
            except _RunAgain:
                if attempt < _ROLLBACK_RETRIES:
                    continue
                raise StoreError("the transaction kept meeting concurrent changes") from None
            except asyncpg.TransactionRollbackError as exc:
                # A serialization failure or a deadlock: PostgreSQL rolled it all back.
                if attempt < _ROLLBACK_RETRIES:
                    continue
                raise _as_store_error(exc) from exc
            except asyncpg.PostgresError as exc:
                raise _as_store_error(exc) from exc
            except _CONNECTION_ERRORS as exc:
                if self._pool is None:
                    raise StoreClosed("the store is closed") from exc
                if read_only and not retried_read:
                    retried_read = True  # a read is safe to run again on another connection
                    continue
                raise _as_store_error(exc) from exc

    async def _read(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        return await self._run(fn, transaction=False, read_only=True)

    async def _statement(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn``, whose each statement is a write that commits on its own."""
        return await self._run(fn, transaction=False)

    async def _write(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn`` in a transaction; return once it is committed."""
        return await self._run(fn, transaction=True)

    # --- integrations -----------------------------------------------------------------------

    async def put_integration(
        self, integration_id: str, definition_json: str, *, created_at: datetime | None = None
    ) -> IntegrationRecord:
        when = _aware(created_at) if created_at is not None else datetime.now(UTC)

        async def op(conn: Connection) -> IntegrationRecord:
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
        async def fn(conn: Connection) -> IntegrationRecord | None:
            if version is None:
                row = await conn.fetchrow(
                    f"SELECT {_INTEGRATION_COLUMNS} FROM integrations"  # noqa: S608
                    " WHERE id = $1 AND NOT deleted ORDER BY version DESC LIMIT 1",
                    integration_id,
                )
            else:
                row = await conn.fetchrow(
                    f"SELECT {_INTEGRATION_COLUMNS} FROM integrations"  # noqa: S608
                    " WHERE id = $1 AND version = $2 AND NOT deleted",
                    integration_id,
                    version,
                )
            return None if row is None else _integration(row)

        return await self._read(fn)

    async def list_integrations(self) -> tuple[IntegrationRecord, ...]:
        async def fn(conn: Connection) -> tuple[IntegrationRecord, ...]:
            rows = await conn.fetch(
                f"SELECT DISTINCT ON (id) {_INTEGRATION_COLUMNS} FROM integrations"  # noqa: S608
                " WHERE NOT deleted ORDER BY id, version DESC"
            )
            return tuple(_integration(row) for row in rows)

        return await self._read(fn)

    async def delete_integration(self, integration_id: str) -> bool:
        async def op(conn: Connection) -> bool:
            status = await conn.execute(
                "UPDATE integrations SET deleted = true WHERE id = $1 AND NOT deleted",
                integration_id,
            )
            return bool(status != "UPDATE 0")

        return await self._statement(op)

    # --- installations ----------------------------------------------------------------------

    async def create_installation(self, record: InstallationRecord) -> InstallationRecord:
        params = _installation_params(record)

        async def op(conn: Connection) -> InstallationRecord:
            try:
                await conn.execute(_INSERT_INSTALLATION, *params)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(
                    f"installation {record.id!r} or its webhook token is already in use"
                ) from exc
            if record.enabled:
                await _insert_numbers(conn, record)
            return record

        return await self._write(op)

    async def update_installation(self, record: InstallationRecord) -> InstallationRecord:
        params = _installation_params(record)
        # (id, …, created_at, updated_at) → the UPDATE's: id, fields, updated_at
        update_params = (*params[:10], params[11])

        async def op(conn: Connection) -> InstallationRecord:
            try:
                created_at = await conn.fetchval(_UPDATE_INSTALLATION, *update_params)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"the webhook token of {record.id!r} is already in use") from exc
            if created_at is None:
                raise NotFound("installation", record.id)
            await conn.execute(
                "DELETE FROM installation_numbers WHERE installation_id = $1", record.id
            )
            if record.enabled:
                await _insert_numbers(conn, record)
            return replace(record, created_at=_utc(created_at))

        return await self._write(op)

    async def get_installation(self, installation_id: str) -> InstallationRecord | None:
        async def fn(conn: Connection) -> InstallationRecord | None:
            row = await conn.fetchrow(_SELECT_INSTALLATION + " WHERE i.id = $1", installation_id)
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def list_installations(
        self, *, org_id: str | None = None, integration_id: str | None = None
    ) -> tuple[InstallationRecord, ...]:
        async def fn(conn: Connection) -> tuple[InstallationRecord, ...]:
            rows = await conn.fetch(
                _SELECT_INSTALLATION + " WHERE ($1::text IS NULL OR i.org_id = $1)"
                " AND ($2::text IS NULL OR i.integration_id = $2)"
                " ORDER BY i.created_at, i.id",
                org_id,
                integration_id,
            )
            return tuple(_installation(row) for row in rows)

        return await self._read(fn)

    async def find_installation_by_number(
        self, integration_id: str, number: str
    ) -> InstallationRecord | None:
        async def fn(conn: Connection) -> InstallationRecord | None:
            row = await conn.fetchrow(
                _SELECT_INSTALLATION_BY_NUMBER + " WHERE n.integration_id = $1 AND n.number = $2",
                integration_id,
                number,
            )
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def find_installations_for_number(
        self, org_id: str, number: str
    ) -> tuple[InstallationRecord, ...]:
        async def fn(conn: Connection) -> tuple[InstallationRecord, ...]:
            rows = await conn.fetch(
                _SELECT_INSTALLATION_BY_NUMBER + " WHERE n.org_id = $1 AND n.number = $2"
                " ORDER BY i.created_at, i.id",
                org_id,
                number,
            )
            return tuple(_installation(row) for row in rows)

        return await self._read(fn)

    async def find_installation_by_token_hash(
        self, integration_id: str, token_hash: str
    ) -> InstallationRecord | None:
        async def fn(conn: Connection) -> InstallationRecord | None:
            row = await conn.fetchrow(
                _SELECT_INSTALLATION + " WHERE i.integration_id = $1 AND i.webhook_token_hash = $2",
                integration_id,
                token_hash,
            )
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def count_installations(self, integration_id: str, *, enabled_only: bool = True) -> int:
        async def fn(conn: Connection) -> int:
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
        params = _message_params(record)
        key = record.idempotency_key

        async def op(conn: Connection) -> tuple[MessageRecord, bool]:
            # Single statements, each its own transaction: after an ON CONFLICT that inserted
            # nothing, the holder of the key is committed, and the next statement sees it.
            try:
                if key is None:
                    await conn.execute(_INSERT_MESSAGE, *params)
                    return record, True
                if await conn.fetchval(_CLAIM_MESSAGE, *params) is not None:
                    return record, True
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"message {record.id!r} already exists") from exc
            row = await conn.fetchrow(
                _SELECT_MESSAGE + " WHERE org_id = $1 AND idempotency_key = $2",
                record.org_id,
                key,
            )
            if row is None:  # claimed and gone between the two statements: claim again
                raise _RunAgain
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
    ) -> MessageRecord:
        when = _aware(updated_at) if updated_at is not None else datetime.now(UTC)
        params = (
            *_change(state if isinstance(state, Unset) else MessageState(state).value),
            *_change(provider_message_id),
            *_change(provider_status),
            *_change(attempts),
            *_change(error if not isinstance(error, str) else _free_text(error)),
            *_change(reply_json),
            when,
            message_id,
        )

        async def op(conn: Connection) -> MessageRecord:
            row = await conn.fetchrow(_UPDATE_MESSAGE, *params)
            if row is None:
                raise NotFound("message", message_id)
            return _message(row)

        return await self._statement(op)

    async def get_message(self, message_id: str) -> MessageRecord | None:
        async def fn(conn: Connection) -> MessageRecord | None:
            row = await conn.fetchrow(_SELECT_MESSAGE + " WHERE id = $1", message_id)
            return None if row is None else _message(row)

        return await self._read(fn)

    async def get_message_by_idempotency_key(
        self, org_id: str, idempotency_key: str
    ) -> MessageRecord | None:
        async def fn(conn: Connection) -> MessageRecord | None:
            row = await conn.fetchrow(
                _SELECT_MESSAGE + " WHERE org_id = $1 AND idempotency_key = $2",
                org_id,
                idempotency_key,
            )
            return None if row is None else _message(row)

        return await self._read(fn)

    async def find_message_by_provider_id(
        self, integration_id: str, provider_message_id: str
    ) -> MessageRecord | None:
        async def fn(conn: Connection) -> MessageRecord | None:
            row = await conn.fetchrow(
                _SELECT_MESSAGE + " WHERE integration_id = $1 AND provider_message_id = $2"
                " ORDER BY created_at DESC, id DESC LIMIT 1",
                integration_id,
                provider_message_id,
            )
            return None if row is None else _message(row)

        return await self._read(fn)


# ---------------------------------------------------------------------------------------------
# Migrations

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL
)
"""


async def _apply_migrations(
    conn: Connection, migrations: Sequence[Migration]
) -> tuple[Migration, ...]:
    """Apply the pending migrations, each in its own transaction, under :data:`MIGRATION_LOCK`.

    The lock is a session lock held across all of them: a replica opening at the same time
    waits here, then reads ``schema_migrations`` afresh and finds nothing left to do.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(_CREATE_MIGRATIONS_TABLE)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied = {int(row[0]): str(row[1]) for row in rows}
        done: list[Migration] = []
        for migration in pending_migrations(applied, migrations):
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                        " VALUES ($1, $2, $3, $4)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                        datetime.now(UTC),
                    )
                    await conn.execute(migration.sql)  # no arguments: a multi-statement script
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                ) from exc
            done.append(migration)
            logger.info("applied schema migration %04d_%s", migration.version, migration.name)
        return tuple(done)
    finally:
        with contextlib.suppress(*_CONNECTION_ERRORS, asyncpg.PostgresError):
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
