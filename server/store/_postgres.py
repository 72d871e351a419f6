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
- **Idempotency keys** and **dedupe keys**: ``INSERT … ON CONFLICT DO NOTHING`` on a unique key.
  When it inserted nothing, the row holding the key is committed (PostgreSQL waited for its
  transaction), so the claim is atomic across replicas.
- **Held receipts** are taken with ``DELETE … RETURNING`` (``FOR UPDATE SKIP LOCKED`` for the
  due ones), so each is taken by one call on one replica.
- **Durable consumers**: :meth:`PostgresStore.lease_events` locks the consumer's row (created
  on first use) for its transaction, so the subscribers of one consumer, on any replica, take
  turns at its frontier and never get the same fresh event; expired leases are taken
  ``FOR UPDATE SKIP LOCKED`` (one being acknowledged right now is skipped, not waited for).

Event cursors follow commit order. A ``BIGSERIAL`` would not do: a sequence hands out values in
call order, transactions commit in another, and a reader that has seen cursor N could later
miss an N-1 committed after it. Here an append takes its cursors from the one-row table
``event_cursor`` (``INSERT … ON CONFLICT DO UPDATE SET last = last + n RETURNING last``) as the
transaction's last statement but one — after the request row, the dedupe keys, the transitions
and the held receipts, before the events themselves — and the row stays locked until the
commit. A concurrent append waits there and gets greater cursors only once this one is visible,
so once :meth:`~PostgresStore.latest_cursor` (that row) or a read returned N, every cursor up
to N is committed and none will appear below it. The cost: appends commit one after another
(the lock is held only for the events' insert and the commit itself), so each waits for the one
before it to flush its WAL. To keep that from capping ingests at one per flush, the ingests a
process makes at the same time run as one transaction (:class:`_IngestBatcher`: one statement
per step for the whole batch, one commit; measured here, about 5,500 ingests/s from one process
instead of 1,100). The same statement sends ``NOTIFY msgbridge_events``
(:data:`EVENTS_CHANNEL`, payload the new latest cursor), which PostgreSQL delivers at the
commit and drops on a rollback.

Waking readers on every replica: :meth:`PostgresStore.listen_events` listens (``LISTEN``) on a
connection of its own and calls back on each notification, and once more after reconnecting
(see :class:`EventListener`). Notifications are only a wake-up; the events table is the truth,
so a lost notification delays a reader that re-reads the table now and then, never loses an
event.

Errors. Every asyncpg error becomes a :class:`StoreError`: a unique violation a
:class:`Conflict`, a lost or refused connection a plain :class:`StoreError`. A transaction that
PostgreSQL rolled back for a serialization failure or a deadlock is run again (a few times): it
left nothing behind. A read that lost its connection is run again once; a write is not (its
commit may have happened).

Values. Times are ``timestamptz`` (microseconds, UTC) and identifiers use the ``"C"``
collation, so they sort by code point as in SQLite. Maps, lists and headers are JSON text and
bodies ``bytea``, read back exactly. PostgreSQL text cannot hold U+0000: in a plain text value
(a message's text, an event's text, …) the store writes U+FFFD in its place rather than fail
the write — a webhook carrying one is still ingested — so such a value reads back changed.

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
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self, TypeVar

import asyncpg

from ._base import (
    UNSET,
    Conflict,
    EventFilter,
    EventRecord,
    HeldReceipt,
    InboundEventType,
    IngestOutcome,
    InstallationRecord,
    IntegrationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    MessageTransition,
    NewEvent,
    NumberTaken,
    RecordNotFound,
    StoreClosed,
    StoreError,
    Unset,
    WebhookOutcome,
    WebhookRequestRecord,
)
from ._codec import (
    decode_headers,
    decode_map,
    decode_numbers,
    decode_texts,
    decode_time,
    encode_headers,
    encode_map,
    encode_numbers,
    encode_texts,
    encode_time,
    frozen_map,
)
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


def _storable(value: object) -> object:
    """An argument as PostgreSQL can store it: U+0000, which text refuses, becomes U+FFFD."""
    if type(value) is str:
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if type(value) is list:
        return [_storable(item) for item in value]
    return value


class _Connection:
    """A pooled connection whose every text argument passes through :func:`_storable`.

    Maps, lists and headers are JSON text, where JSON escapes U+0000, so they round-trip
    exactly; only a plain text column with U+0000 in it reads back with U+FFFD instead.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: Connection) -> None:
        self.raw = raw

    async def execute(self, query: str, *args: object) -> str:
        return str(await self.raw.execute(query, *map(_storable, args)))

    async def executemany(self, query: str, args: Sequence[Sequence[object]]) -> None:
        await self.raw.executemany(query, [tuple(map(_storable, row)) for row in args])

    async def fetch(self, query: str, *args: object) -> list[Row]:
        return list(await self.raw.fetch(query, *map(_storable, args)))

    async def fetchrow(self, query: str, *args: object) -> Row | None:
        return await self.raw.fetchrow(query, *map(_storable, args))

    async def fetchval(self, query: str, *args: object) -> Any:
        return await self.raw.fetchval(query, *map(_storable, args))


def _count(status: str) -> int:
    """The row count of a command status such as ``DELETE 3`` or ``UPDATE 0``."""
    return int(status.rsplit(" ", 1)[-1])


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
        record.subscription_error,
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
        record.text,
        record.media_url,
        MessageState(record.state).value,
        record.provider_message_id,
        record.provider_status,
        record.attempts,
        record.error,
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


async def _insert_numbers(conn: _Connection, record: InstallationRecord) -> None:
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


# --- the inbound path -------------------------------------------------------------------------


_EVENT_FIELDS = """
    type, org_id, installation_id, integration_id, users_json, from_number, to_number, text,
    media_urls_json, provider_message_id, message_id, status, error, metadata_json, received_at,
    request_id, dedupe_key
"""


def _event_params(event: NewEvent) -> tuple[Any, ...]:
    """An event's ``_EVENT_FIELDS`` values (everything but the cursor)."""
    return (
        event.type,
        event.org_id,
        event.installation_id,
        event.integration_id,
        encode_texts(event.users),
        event.from_number,
        event.to_number,
        event.text,
        encode_texts(event.media_urls),
        event.provider_message_id,
        event.message_id,
        event.status,
        event.error,
        encode_map(event.metadata),
        _aware(event.received_at),
        event.request_id,
        event.dedupe_key,
    )


def _event(row: Row) -> EventRecord:
    """A row of ``cursor`` then ``_EVENT_FIELDS``."""
    return EventRecord(
        cursor=row[0],
        type=row[1],
        org_id=row[2],
        installation_id=row[3],
        integration_id=row[4],
        users=decode_texts(row[5]),
        from_number=row[6],
        to_number=row[7],
        text=row[8],
        media_urls=decode_texts(row[9]),
        provider_message_id=row[10],
        message_id=row[11],
        status=row[12],
        error=row[13],
        metadata=decode_map(row[14]),
        received_at=_utc(row[15]),
        request_id=row[16],
        dedupe_key=row[17],
    )


def _encode_event(event: NewEvent) -> str:
    """A held receipt's event as JSON (times as microseconds since the epoch)."""
    data = {
        "type": event.type,
        "org_id": event.org_id,
        "installation_id": event.installation_id,
        "integration_id": event.integration_id,
        "users": list(event.users),
        "from_number": event.from_number,
        "to_number": event.to_number,
        "text": event.text,
        "media_urls": list(event.media_urls),
        "provider_message_id": event.provider_message_id,
        "message_id": event.message_id,
        "status": event.status,
        "error": event.error,
        "metadata": dict(event.metadata),
        "received_at": encode_time(event.received_at),
        "request_id": event.request_id,
        "dedupe_key": event.dedupe_key,
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _decode_event(text: str) -> NewEvent:
    data = json.loads(text)
    return NewEvent(
        type=data["type"],
        org_id=data["org_id"],
        installation_id=data["installation_id"],
        integration_id=data["integration_id"],
        users=tuple(data["users"]),
        from_number=data["from_number"],
        to_number=data["to_number"],
        text=data["text"],
        media_urls=tuple(data["media_urls"]),
        provider_message_id=data["provider_message_id"],
        message_id=data["message_id"],
        status=data["status"],
        error=data["error"],
        metadata=MappingProxyType({str(k): str(v) for k, v in data["metadata"].items()}),
        received_at=decode_time(data["received_at"]),
        request_id=data["request_id"],
        dedupe_key=data["dedupe_key"],
    )


_HELD_COLUMNS = "id, integration_id, provider_message_id, event_json, held_at, release_at"


def _held(row: Row) -> HeldReceipt:
    return HeldReceipt(
        id=row[0],
        integration_id=row[1],
        provider_message_id=row[2],
        event=_decode_event(row[3]),
        held_at=_utc(row[4]),
        release_at=_utc(row[5]),
    )


def _held_params(receipt: HeldReceipt) -> tuple[Any, ...]:
    return (
        receipt.id,
        receipt.integration_id,
        receipt.provider_message_id,
        _encode_event(receipt.event),
        _aware(receipt.held_at),
        _aware(receipt.release_at),
    )


_REQUEST_COLUMNS = """
    id, received_at, integration_id, installation_id, method, path, query, headers_json, body,
    content_type, outcome, reason, replayed_at
"""


def _request_params(request: WebhookRequestRecord) -> tuple[Any, ...]:
    return (
        request.id,
        _aware(request.received_at),
        request.integration_id,
        request.installation_id,
        request.method,
        request.path,
        request.query,
        encode_headers(request.headers),
        bytes(request.body),
        request.content_type,
        WebhookOutcome(request.outcome).value,
        request.reason,
        None if request.replayed_at is None else _aware(request.replayed_at),
    )


def _webhook_request(row: Row) -> WebhookRequestRecord:
    return WebhookRequestRecord(
        id=row[0],
        received_at=_utc(row[1]),
        integration_id=row[2],
        installation_id=row[3],
        method=row[4],
        path=row[5],
        query=row[6],
        headers=decode_headers(row[7]),
        body=bytes(row[8]),
        content_type=row[9],
        outcome=WebhookOutcome(row[10]),
        reason=row[11],
        replayed_at=None if row[12] is None else _utc(row[12]),
    )


# The transition a held receipt's event type implies once its message is known.
_RECEIPT_STATES: Final[Mapping[str, MessageState]] = MappingProxyType(
    {
        InboundEventType.MESSAGE_DELIVERED: MessageState.DELIVERED,
        InboundEventType.MESSAGE_FAILED: MessageState.FAILED,
        InboundEventType.MESSAGE_SENT: MessageState.SENT,
    }
)


def _transition_params(transition: MessageTransition, stamp: datetime) -> tuple[Any, ...]:
    state = MessageState(transition.state)
    if state is MessageState.PENDING:
        raise ValueError(f"message {transition.message_id!r}: a receipt cannot make it pending")
    return (state.value, transition.error, stamp, transition.message_id)


# Takes `$1` cursors, just before the commit: the row stays locked until the transaction ends, so
# a concurrent append waits here and gets greater cursors only after this one is visible (the
# module's docstring). The NOTIFY is delivered at the commit, and not at all on a rollback.
_TAKE_CURSORS = f"""
WITH taken AS (
    INSERT INTO event_cursor (only_row, last) VALUES (true, $1)
    ON CONFLICT (only_row) DO UPDATE SET last = event_cursor.last + excluded.last
    RETURNING last
)
SELECT last, pg_notify('{EVENTS_CHANNEL}', last::text) FROM taken
"""  # noqa: S608 - a constant

_NO_BOUND: Final = 2**63 - 1  # the greatest bigint: "no upper bound" for _READ_EVENTS

_LATEST_CURSOR = "SELECT COALESCE((SELECT last FROM event_cursor), 0)"

_EARLIEST_CURSOR = """
SELECT COALESCE((SELECT MIN(cursor) FROM events) - 1, (SELECT last FROM event_cursor), 0)
"""

_INSERT_EVENT = f"""
INSERT INTO events (cursor, {_EVENT_FIELDS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
"""  # noqa: S608 - constants

# $1 after, $2 up to (inclusive), $3 org (NULL: any), $4 integration (NULL: any), $5 types
# (NULL: any), $6 orgs (NULL: any), $7 limit. The scan walks the cursor key forward and filters
# as it goes.
_READ_EVENTS = f"""
SELECT cursor, {_EVENT_FIELDS} FROM events
WHERE cursor > $1 AND cursor <= $2
  AND ($3::text IS NULL OR org_id = $3) AND ($4::text IS NULL OR integration_id = $4)
  AND ($5::text[] IS NULL OR type = ANY ($5)) AND ($6::text[] IS NULL OR org_id = ANY ($6))
ORDER BY cursor LIMIT $7
"""  # noqa: S608 - constants

# The dedupe keys of one call, each once and in key order (the same order in every transaction,
# which keeps two ingests claiming the same keys from deadlocking); returns the ones claimed now.
_CLAIM_KEYS = """
INSERT INTO dedupe_keys (key, created_at)
SELECT key, created_at FROM unnest($1::text[], $2::timestamptz[]) AS claim (key, created_at)
ORDER BY key
ON CONFLICT (key) DO NOTHING
RETURNING key
"""

# $1 state, $2 error, $3 updated_at, $4 id. DELIVERED and FAILED change a pending or sent
# message, SENT only a pending one: terminal states are sticky and SENT never downgrades.
_APPLY_TRANSITION = """
UPDATE messages SET state = $1::text, error = $2, updated_at = $3
WHERE id = $4 AND (state = 'pending' OR (state = 'sent' AND $1::text IN ('delivered', 'failed')))
"""

_INSERT_HELD = f"""
INSERT INTO held_receipts ({_HELD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
"""  # noqa: S608 - constants

_TAKE_HELD_BY_PROVIDER_ID = f"""
DELETE FROM held_receipts WHERE integration_id = $1 AND provider_message_id = $2
RETURNING {_HELD_COLUMNS}
"""  # noqa: S608 - constants

# SKIP LOCKED: a receipt another replica is taking right now is left to it.
_TAKE_DUE_HELD = f"""
DELETE FROM held_receipts WHERE id IN (
    SELECT id FROM held_receipts WHERE release_at <= $1 FOR UPDATE SKIP LOCKED
)
RETURNING {_HELD_COLUMNS}
"""  # noqa: S608 - constants

_INSERT_WEBHOOK_REQUEST = f"""
INSERT INTO webhook_requests ({_REQUEST_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""  # noqa: S608 - constants

_LIST_WEBHOOK_REQUESTS = f"""
SELECT {_REQUEST_COLUMNS} FROM webhook_requests
WHERE outcome = ANY ($1::text[]) AND ($2::text IS NULL OR integration_id = $2)
ORDER BY received_at DESC, id DESC LIMIT $3 OFFSET $4
"""  # noqa: S608 - constants

# Creates the consumer if new (its frontier "from now" unless $2 says where), and in any case
# locks its row until the transaction ends and returns its frontier: the subscribers of one
# consumer, on any replica, take turns at the frontier.
_LOCK_CONSUMER = """
INSERT INTO event_consumers (name, frontier, created_at)
VALUES ($1, COALESCE($2::bigint, (SELECT last FROM event_cursor), 0), $3)
ON CONFLICT (name) DO UPDATE SET name = excluded.name
RETURNING frontier
"""

# $1 consumer, $2 now, $3 limit: expired leases whose event is kept, lowest cursor first. A lease
# another transaction holds (being acknowledged, say) is skipped rather than waited for.
_EXPIRED_LEASES = """
SELECT e.cursor, e.type, e.org_id, e.installation_id, e.integration_id, e.users_json,
       e.from_number, e.to_number, e.text, e.media_urls_json, e.provider_message_id,
       e.message_id, e.status, e.error, e.metadata_json, e.received_at, e.request_id,
       e.dedupe_key
FROM event_leases AS l JOIN events AS e ON e.cursor = l.cursor
WHERE l.consumer = $1 AND l.lease_until <= $2
ORDER BY l.cursor LIMIT $3
FOR UPDATE OF l SKIP LOCKED
"""

_PUT_LEASES = """
INSERT INTO event_leases (consumer, cursor, subscriber, lease_until)
SELECT $1, leased, $2, $3 FROM unnest($4::bigint[]) AS leased
ON CONFLICT (consumer, cursor) DO UPDATE SET
    subscriber = excluded.subscriber, lease_until = excluded.lease_until
"""

# Chunked deletes: $1 the time (or cursor) bound, $2 the chunk size.
_PURGE_STATEMENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "requests": """
DELETE FROM webhook_requests WHERE id IN (
    SELECT id FROM webhook_requests WHERE outcome = 'matched' AND received_at < $1 LIMIT $2
)""",
        "unmatched": """
DELETE FROM webhook_requests WHERE id IN (
    SELECT id FROM webhook_requests
    WHERE outcome IN ('unmatched', 'unroutable', 'unauthenticated') AND received_at < $1
    LIMIT $2
)""",
        "messages": """
DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE created_at < $1 LIMIT $2)""",
        "dedupe_keys": """
DELETE FROM dedupe_keys WHERE key IN (
    SELECT key FROM dedupe_keys WHERE created_at < $1 LIMIT $2
)""",
        "events": """
DELETE FROM events WHERE cursor IN (
    SELECT cursor FROM events WHERE cursor < $1 ORDER BY cursor LIMIT $2
)""",
    }
)
assert {o.value for o in WebhookOutcome} == {
    "matched",
    "unmatched",
    "unroutable",
    "unauthenticated",
}

# The first cursor to keep when events received before $1 are purged (a prefix of the log).
_EVENTS_PURGE_BOUND = """
SELECT COALESCE(
    (SELECT cursor FROM events WHERE received_at >= $1 ORDER BY cursor LIMIT 1),
    (SELECT COALESCE(MAX(cursor), 0) + 1 FROM events)
)
"""


def _filter_params(event_filter: EventFilter) -> tuple[Any, ...]:
    types = sorted(event_filter.types) if event_filter.types else None
    orgs = sorted(event_filter.orgs) if event_filter.orgs is not None else None
    return (event_filter.org_id, event_filter.integration_id, types, orgs)


async def _append(
    conn: _Connection, events: Sequence[tuple[NewEvent, tuple[Any, ...]]]
) -> list[EventRecord]:
    """Append events (each with its ``_event_params``) with the next cursors; run it last in the
    transaction (see _TAKE_CURSORS)."""
    if not events:
        return []
    last = int(await conn.fetchval(_TAKE_CURSORS, len(events)))
    first = last - len(events) + 1
    await conn.executemany(
        _INSERT_EVENT, [(first + n, *params) for n, (_, params) in enumerate(events)]
    )
    return [EventRecord.appended(event, first + n) for n, (event, _) in enumerate(events)]


@dataclass(frozen=True, slots=True)
class _Inbound:
    """What one ingest or replay appends, encoded before any transaction (so that a bad value —
    a naive time, a PENDING transition — is the caller's ValueError, never a batch's failure)."""

    events: tuple[tuple[NewEvent, tuple[Any, ...]], ...]  # each event and its _EVENT_FIELDS
    transitions: tuple[tuple[Any, ...], ...]
    held: tuple[tuple[HeldReceipt, tuple[Any, ...]], ...]

    @classmethod
    def encode(
        cls,
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition],
        held: Sequence[HeldReceipt],
        stamp: datetime,
    ) -> _Inbound:
        return cls(
            tuple((event, _event_params(event)) for event in events),
            tuple(_transition_params(t, stamp) for t in transitions),
            tuple((receipt, _held_params(receipt)) for receipt in held),
        )


async def _apply_inbound(conn: _Connection, inbounds: Sequence[_Inbound]) -> list[IngestOutcome]:
    """Inside the caller's transaction, for one call or a batch of them, in order: dedupe,
    transitions, held receipts, then the append (see _TAKE_CURSORS). One statement per step
    whatever the number of calls."""
    # 1. Claim every dedupe key at once. Per call, its events and then its held receipts, the
    #    first with a key claimed now is kept; any other with that key is a duplicate.
    times: dict[str, datetime] = {}
    for inbound in inbounds:
        for event, params in inbound.events:
            if event.dedupe_key is not None:
                times.setdefault(event.dedupe_key, params[14])
        for receipt, _ in inbound.held:
            if receipt.event.dedupe_key is not None:
                times.setdefault(receipt.event.dedupe_key, _aware(receipt.event.received_at))
    claimed: set[object] = set()
    if times:
        rows = await conn.fetch(_CLAIM_KEYS, list(times), list(times.values()))
        claimed = {row[0] for row in rows}

    def first_claim(key: str | None) -> bool:
        if key is None:
            return True
        stored = _storable(key)  # as PostgreSQL returned it
        if stored in claimed:
            claimed.discard(stored)
            return True
        return False

    appending: list[list[tuple[NewEvent, tuple[Any, ...]]]] = []
    holding: list[tuple[Any, ...]] = []
    duplicates: list[int] = []
    for inbound in inbounds:
        kept = [item for item in inbound.events if first_claim(item[0].dedupe_key)]
        held = [params for receipt, params in inbound.held if first_claim(receipt.event.dedupe_key)]
        appending.append(kept)
        holding.extend(held)
        duplicates.append(len(inbound.events) - len(kept) + len(inbound.held) - len(held))
    # 2. Transitions, in the given order (one statement each: a later one sees an earlier one).
    transitions = [params for inbound in inbounds for params in inbound.transitions]
    if transitions:
        await conn.executemany(_APPLY_TRANSITION, transitions)
    # 3. Held receipts.
    if holding:
        try:
            await conn.executemany(_INSERT_HELD, holding)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("a held receipt's id is already in use") from exc
    # 4. The events, last: their cursors lock the counter until the commit.
    appended = iter(await _append(conn, [item for kept in appending for item in kept]))
    return [
        IngestOutcome(events=tuple(itertools.islice(appended, len(kept))), duplicates=dups)
        for kept, dups in zip(appending, duplicates, strict=True)
    ]


@dataclass(slots=True)
class _QueuedIngest:
    request_params: tuple[Any, ...]
    inbound: _Inbound
    future: asyncio.Future[IngestOutcome]


class _IngestBatcher:
    """Runs the ingests this process makes at the same time as one transaction.

    Appends commit one after another (the cursor row, see the module's docstring), each commit
    waits for its WAL flush, so one transaction per ingest caps a database at one ingest per
    flush. Queued ingests go instead in batches of up to ``max_batch``: one transaction, one
    statement per step for the whole batch, one flush. A batch that fails on a unique key (a
    request or held receipt id in use) is run again one ingest at a time, so that only the
    ingest at fault fails; other failures (a lost connection) fail the whole batch.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[_QueuedIngest]], Awaitable[list[IngestOutcome]]],
        run_one: Callable[[_QueuedIngest], Awaitable[IngestOutcome]],
        *,
        max_batch: int,
    ) -> None:
        self._run_batch = run_batch
        self._run_one = run_one
        self._max_batch = max_batch
        self._queue: list[_QueuedIngest] = []
        self._draining: asyncio.Task[None] | None = None

    def submit(
        self, request_params: tuple[Any, ...], inbound: _Inbound
    ) -> asyncio.Future[IngestOutcome]:
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_QueuedIngest(request_params, inbound, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain(), name="msgbridge-store-ingest")
        return future

    async def wait_idle(self) -> None:
        """Return once every ingest submitted so far is settled."""
        while self._draining is not None:
            await asyncio.shield(self._draining)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._settle(batch)
        finally:
            self._draining = None

    async def _settle(self, batch: Sequence[_QueuedIngest]) -> None:
        if len(batch) == 1:
            await self._settle_one(batch[0])
            return
        try:
            outcomes = await self._run_batch(batch)
        except Conflict:  # one of them is at fault: find which
            for item in batch:
                await self._settle_one(item)
            return
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            if not item.future.done():  # else the caller was cancelled; the ingest ran anyway
                item.future.set_result(outcome)

    async def _settle_one(self, item: _QueuedIngest) -> None:
        try:
            outcome = await self._run_one(item)
        except BaseException as exc:
            _fail([item], exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not item.future.done():
                item.future.set_result(outcome)


def _fail(batch: Sequence[_QueuedIngest], exc: BaseException) -> None:
    """Settle the callers of a batch that failed (its task cancelled: as a StoreError)."""
    if not isinstance(exc, Exception):
        exc = StoreError("the ingest was interrupted; it may or may not have been stored")
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)


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
    one database at once. Concurrent ingests go in transactions of up to ``ingest_batch`` (see
    :class:`_IngestBatcher`); a purge deletes ``purge_chunk`` rows per statement.
    """

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
        self._ingests = _IngestBatcher(self._ingest_batch, self._ingest_one, max_batch=ingest_batch)
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
        self._closing = False

    async def close(self) -> None:
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
        fn: Callable[[_Connection], Awaitable[T]],
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
                async with pool.acquire() as raw:
                    if not transaction:
                        return await fn(_Connection(raw))
                    async with raw.transaction():
                        return await fn(_Connection(raw))
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
            except _CONNECTION_ERRORS as exc:  # before PostgresError: some are of its kind
                if self._pool is None:
                    raise StoreClosed("the store is closed") from exc
                if read_only and not retried_read:
                    retried_read = True  # a read is safe to run again on another connection
                    continue
                raise _as_store_error(exc) from exc
            except asyncpg.PostgresError as exc:
                raise _as_store_error(exc) from exc

    async def _read(self, fn: Callable[[_Connection], Awaitable[T]]) -> T:
        return await self._run(fn, transaction=False, read_only=True)

    async def _statement(self, fn: Callable[[_Connection], Awaitable[T]]) -> T:
        """Run ``fn``, whose each statement is a write that commits on its own."""
        return await self._run(fn, transaction=False)

    async def _write(self, fn: Callable[[_Connection], Awaitable[T]]) -> T:
        """Run ``fn`` in a transaction; return once it is committed."""
        return await self._run(fn, transaction=True)

    # --- integrations -----------------------------------------------------------------------

    async def put_integration(
        self, integration_id: str, definition_json: str, *, created_at: datetime | None = None
    ) -> IntegrationRecord:
        when = _aware(created_at) if created_at is not None else datetime.now(UTC)

        async def op(conn: _Connection) -> IntegrationRecord:
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
        async def fn(conn: _Connection) -> IntegrationRecord | None:
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
        async def fn(conn: _Connection) -> tuple[IntegrationRecord, ...]:
            rows = await conn.fetch(
                f"SELECT DISTINCT ON (id) {_INTEGRATION_COLUMNS} FROM integrations"  # noqa: S608
                " WHERE NOT deleted ORDER BY id, version DESC"
            )
            return tuple(_integration(row) for row in rows)

        return await self._read(fn)

    async def delete_integration(self, integration_id: str) -> bool:
        async def op(conn: _Connection) -> bool:
            status = await conn.execute(
                "UPDATE integrations SET deleted = true WHERE id = $1 AND NOT deleted",
                integration_id,
            )
            return _count(status) > 0

        return await self._statement(op)

    # --- installations ----------------------------------------------------------------------

    async def create_installation(self, record: InstallationRecord) -> InstallationRecord:
        params = _installation_params(record)

        async def op(conn: _Connection) -> InstallationRecord:
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

        async def op(conn: _Connection) -> InstallationRecord:
            try:
                created_at = await conn.fetchval(_UPDATE_INSTALLATION, *update_params)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"the webhook token of {record.id!r} is already in use") from exc
            if created_at is None:
                raise RecordNotFound("installation", record.id)
            await conn.execute(
                "DELETE FROM installation_numbers WHERE installation_id = $1", record.id
            )
            if record.enabled:
                await _insert_numbers(conn, record)
            return replace(record, created_at=_utc(created_at))

        return await self._write(op)

    async def get_installation(self, installation_id: str) -> InstallationRecord | None:
        async def fn(conn: _Connection) -> InstallationRecord | None:
            row = await conn.fetchrow(_SELECT_INSTALLATION + " WHERE i.id = $1", installation_id)
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def list_installations(
        self, *, org_id: str | None = None, integration_id: str | None = None
    ) -> tuple[InstallationRecord, ...]:
        async def fn(conn: _Connection) -> tuple[InstallationRecord, ...]:
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
        async def fn(conn: _Connection) -> InstallationRecord | None:
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
        async def fn(conn: _Connection) -> tuple[InstallationRecord, ...]:
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
        async def fn(conn: _Connection) -> InstallationRecord | None:
            row = await conn.fetchrow(
                _SELECT_INSTALLATION + " WHERE i.integration_id = $1 AND i.webhook_token_hash = $2",
                integration_id,
                token_hash,
            )
            return None if row is None else _installation(row)

        return await self._read(fn)

    async def count_installations(self, integration_id: str, *, enabled_only: bool = True) -> int:
        async def fn(conn: _Connection) -> int:
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

        async def op(conn: _Connection) -> tuple[MessageRecord, bool]:
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
            *_change(error),
            *_change(reply_json),
            when,
            message_id,
        )

        async def op(conn: _Connection) -> MessageRecord:
            row = await conn.fetchrow(_UPDATE_MESSAGE, *params)
            if row is None:
                raise RecordNotFound("message", message_id)
            return _message(row)

        return await self._statement(op)

    async def get_message(self, message_id: str) -> MessageRecord | None:
        async def fn(conn: _Connection) -> MessageRecord | None:
            row = await conn.fetchrow(_SELECT_MESSAGE + " WHERE id = $1", message_id)
            return None if row is None else _message(row)

        return await self._read(fn)

    async def get_message_by_idempotency_key(
        self, org_id: str, idempotency_key: str
    ) -> MessageRecord | None:
        async def fn(conn: _Connection) -> MessageRecord | None:
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
        async def fn(conn: _Connection) -> MessageRecord | None:
            row = await conn.fetchrow(
                _SELECT_MESSAGE + " WHERE integration_id = $1 AND provider_message_id = $2"
                " ORDER BY created_at DESC, id DESC LIMIT 1",
                integration_id,
                provider_message_id,
            )
            return None if row is None else _message(row)

        return await self._read(fn)

    # --- installations: subscription state ----------------------------------------------------

    async def set_subscription(
        self, installation_id: str, *, state: str, error: str | None
    ) -> None:
        async def op(conn: _Connection) -> None:
            status = await conn.execute(
                "UPDATE installations SET subscription_state = $1, subscription_error = $2"
                " WHERE id = $3",
                state,
                error,
                installation_id,
            )
            if _count(status) == 0:
                raise RecordNotFound("installation", installation_id)

        await self._statement(op)

    # --- installations: values kept beside the record ---------------------------------------

    async def put_installation_value(self, installation_id: str, name: str, value: str) -> None:
        now = encode_time(datetime.now(UTC))

        async def op(conn: _Connection) -> None:
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
        async def op(conn: _Connection) -> str | None:
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

        async def op(conn: _Connection) -> None:
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
        async def op(conn: _Connection) -> tuple[str, bool] | None:
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

    # --- inbound: ingest --------------------------------------------------------------------

    async def ingest(
        self,
        request: WebhookRequestRecord,
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition] = (),
        held: Sequence[HeldReceipt] = (),
    ) -> IngestOutcome:
        request_params = _request_params(request)
        inbound = _Inbound.encode(events, transitions, held, datetime.now(UTC))
        if self._pool is None or self._closing:
            raise StoreClosed("the store is not open")
        return await self._ingests.submit(request_params, inbound)

    async def _ingest_one(self, item: _QueuedIngest) -> IngestOutcome:
        async def op(conn: _Connection) -> IngestOutcome:
            try:
                await conn.execute(_INSERT_WEBHOOK_REQUEST, *item.request_params)
            except asyncpg.UniqueViolationError as exc:
                request_id = item.request_params[0]
                raise Conflict(f"webhook request {request_id!r} already exists") from exc
            (outcome,) = await _apply_inbound(conn, [item.inbound])
            return outcome

        return await self._write(op)

    async def _ingest_batch(self, batch: Sequence[_QueuedIngest]) -> list[IngestOutcome]:
        async def op(conn: _Connection) -> list[IngestOutcome]:
            try:
                await conn.executemany(
                    _INSERT_WEBHOOK_REQUEST, [item.request_params for item in batch]
                )
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("a webhook request id is already in use") from exc
            return await _apply_inbound(conn, [item.inbound for item in batch])

        return await self._write(op)

    async def mark_replayed(
        self,
        request_id: str,
        *,
        outcome: WebhookOutcome,
        reason: str,
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition] = (),
        held: Sequence[HeldReceipt] = (),
        replayed_at: datetime | None = None,
    ) -> IngestOutcome:
        now = datetime.now(UTC)
        when = now if replayed_at is None else _aware(replayed_at)
        inbound = _Inbound.encode(events, transitions, held, now)
        outcome_value = WebhookOutcome(outcome).value

        async def op(conn: _Connection) -> IngestOutcome:
            status = await conn.execute(
                "UPDATE webhook_requests SET outcome = $1, reason = $2, replayed_at = $3"
                " WHERE id = $4",
                outcome_value,
                reason,
                when,
                request_id,
            )
            if _count(status) == 0:
                raise RecordNotFound("webhook request", request_id)
            (applied,) = await _apply_inbound(conn, [inbound])
            return applied

        return await self._write(op)

    async def get_webhook_request(self, request_id: str) -> WebhookRequestRecord | None:
        async def fn(conn: _Connection) -> WebhookRequestRecord | None:
            row = await conn.fetchrow(
                f"SELECT {_REQUEST_COLUMNS} FROM webhook_requests WHERE id = $1",  # noqa: S608
                request_id,
            )
            return None if row is None else _webhook_request(row)

        return await self._read(fn)

    async def list_webhook_requests(
        self,
        *,
        outcomes: frozenset[WebhookOutcome],
        integration_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[WebhookRequestRecord, ...]:
        wanted = sorted(WebhookOutcome(o).value for o in (outcomes or WebhookOutcome))

        async def fn(conn: _Connection) -> tuple[WebhookRequestRecord, ...]:
            rows = await conn.fetch(_LIST_WEBHOOK_REQUESTS, wanted, integration_id, limit, offset)
            return tuple(_webhook_request(row) for row in rows)

        return await self._read(fn)

    # --- inbound: the event log -------------------------------------------------------------

    async def read_events(
        self,
        after_cursor: int,
        *,
        filter: EventFilter = EventFilter(),  # noqa: B008 (frozen, never mutated)
        limit: int = 500,
    ) -> tuple[EventRecord, ...]:
        params = (after_cursor, _NO_BOUND, *_filter_params(filter), limit)

        async def fn(conn: _Connection) -> tuple[EventRecord, ...]:
            return tuple(_event(row) for row in await conn.fetch(_READ_EVENTS, *params))

        return await self._read(fn)

    async def latest_cursor(self) -> int:
        async def fn(conn: _Connection) -> int:
            return int(await conn.fetchval(_LATEST_CURSOR))

        return await self._read(fn)

    async def earliest_cursor(self) -> int:
        async def fn(conn: _Connection) -> int:
            return int(await conn.fetchval(_EARLIEST_CURSOR))

        return await self._read(fn)

    # --- inbound: receipts that overtook their send's reply ---------------------------------

    async def correlate_held(
        self, integration_id: str, provider_message_id: str, message: MessageRecord
    ) -> IngestOutcome:
        stamp = datetime.now(UTC)
        metadata = frozen_map(message.metadata)

        async def op(conn: _Connection) -> IngestOutcome:
            rows = await conn.fetch(
                _TAKE_HELD_BY_PROVIDER_ID,
                integration_id,
                provider_message_id,
            )
            receipts = sorted((_held(row) for row in rows), key=lambda h: (h.held_at, h.id))
            events: list[tuple[NewEvent, tuple[Any, ...]]] = []
            transitions: list[tuple[Any, ...]] = []
            for receipt in receipts:
                event = replace(
                    receipt.event,
                    message_id=message.id,
                    org_id=message.org_id,
                    installation_id=message.installation_id,
                    metadata=metadata,
                )
                events.append((event, _event_params(event)))
                state = _RECEIPT_STATES.get(event.type)
                if state is not None:
                    error = (event.error or None) if state is MessageState.FAILED else None
                    transitions.append((state.value, error, stamp, message.id))
            if transitions:
                await conn.executemany(_APPLY_TRANSITION, transitions)
            appended = await _append(conn, events)
            return IngestOutcome(events=tuple(appended), duplicates=0)

        return await self._write(op)

    async def release_held(self, now: datetime) -> tuple[HeldReceipt, ...]:
        when = _aware(now)

        async def op(conn: _Connection) -> tuple[HeldReceipt, ...]:
            rows = await conn.fetch(_TAKE_DUE_HELD, when)
            return tuple(sorted((_held(row) for row in rows), key=lambda h: (h.release_at, h.id)))

        return await self._write(op)

    # --- inbound: durable consumers ---------------------------------------------------------

    async def lease_events(
        self,
        consumer: str,
        *,
        subscriber: str,
        filter: EventFilter,
        limit: int,
        lease_s: float,
        now: datetime,
        start_after: int | None = None,
    ) -> tuple[EventRecord, ...]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        when = _aware(now)
        until = when + timedelta(seconds=lease_s)
        filter_params = _filter_params(filter)

        async def op(conn: _Connection) -> tuple[EventRecord, ...]:
            frontier = int(await conn.fetchval(_LOCK_CONSUMER, consumer, start_after, when))
            leased = [
                _event(row) for row in await conn.fetch(_EXPIRED_LEASES, consumer, when, limit)
            ]
            rest = limit - len(leased)
            if rest > 0:
                # The latest cursor first: every event up to it is committed, so the read that
                # follows sees all of them, and the frontier may move past the ones it skips.
                latest = int(await conn.fetchval(_LATEST_CURSOR))
                fresh: list[EventRecord] = []
                if latest > frontier:
                    rows = await conn.fetch(_READ_EVENTS, frontier, latest, *filter_params, rest)
                    fresh = [_event(row) for row in rows]
                new_frontier = fresh[-1].cursor if len(fresh) == rest else max(frontier, latest)
                if new_frontier != frontier:
                    await conn.execute(
                        "UPDATE event_consumers SET frontier = $2 WHERE name = $1",
                        consumer,
                        new_frontier,
                    )
                leased.extend(fresh)
            if leased:
                cursors = [event.cursor for event in leased]
                await conn.execute(_PUT_LEASES, consumer, subscriber, until, cursors)
            return tuple(leased)

        return await self._write(op)

    async def ack_events(self, consumer: str, cursors: Sequence[int]) -> int:
        wanted = list(dict.fromkeys(cursors))
        if not wanted:
            return 0

        async def op(conn: _Connection) -> int:
            status = await conn.execute(
                "DELETE FROM event_leases WHERE consumer = $1 AND cursor = ANY ($2::bigint[])",
                consumer,
                wanted,
            )
            return _count(status)

        return await self._statement(op)

    async def release_leases(self, consumer: str, subscriber: str) -> None:
        async def op(conn: _Connection) -> None:
            await conn.execute(
                "UPDATE event_leases SET lease_until = '-infinity'"
                " WHERE consumer = $1 AND subscriber = $2",
                consumer,
                subscriber,
            )

        await self._statement(op)

    # --- retention --------------------------------------------------------------------------

    async def purge(
        self,
        *,
        events_before: datetime | None = None,
        requests_before: datetime | None = None,
        unmatched_before: datetime | None = None,
        messages_before: datetime | None = None,
        dedupe_before: datetime | None = None,
    ) -> dict[str, int]:
        """Deletes in chunks of ``purge_chunk`` rows, each a statement of its own, so that a
        large purge never holds locks for long."""
        bounds: dict[str, object] = {}
        if events_before is not None:
            stamp = _aware(events_before)

            async def bound(conn: _Connection) -> int:
                return int(await conn.fetchval(_EVENTS_PURGE_BOUND, stamp))

            bounds["events"] = await self._read(bound)
        for kind, before in (
            ("requests", requests_before),
            ("unmatched", unmatched_before),
            ("messages", messages_before),
            ("dedupe_keys", dedupe_before),
        ):
            if before is not None:
                bounds[kind] = _aware(before)
        counts = dict.fromkeys(
            ("events", "requests", "unmatched", "messages", "dedupe_keys", "leases"), 0
        )
        for kind, limit in bounds.items():
            counts[kind] = await self._delete_in_chunks(_PURGE_STATEMENTS[kind], limit)
        if "events" in bounds:
            first_kept = bounds["events"]

            async def drop_leases(conn: _Connection) -> int:
                return _count(
                    await conn.execute("DELETE FROM event_leases WHERE cursor < $1", first_kept)
                )

            counts["leases"] = await self._statement(drop_leases)
        return counts

    async def _delete_in_chunks(self, statement: str, bound: object) -> int:
        chunk = self._purge_chunk

        async def op(conn: _Connection) -> int:
            return _count(await conn.execute(statement, bound, chunk))

        total = 0
        while True:
            deleted = await self._statement(op)
            total += deleted
            if deleted < chunk:
                return total


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
