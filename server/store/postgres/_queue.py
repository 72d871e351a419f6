"""The PostgreSQL store's send queue (docs/delivery.md): enqueue, claim, finish, and the reads
of the queue (the methods :class:`~server.store.postgres.PostgresStore` gets from
:class:`QueueMethods`).

Every rule holds across replicas because the database decides it inside one transaction:

- **Conversation order**: an enqueue or a claim of an ordered message first takes a
  transaction-level advisory lock on its conversation (installation, from, to), then looks for
  an earlier waiting message of it. Two enqueues of one conversation therefore take turns, and
  the second sees the first (queued or sending) and queues behind it; two claims of one message
  take turns, and the second finds it ``sending`` already.
- **Rates** (:class:`~server.store.RateSlot`, the generic cell rate algorithm): each key's
  theoretical arrival time is a row of ``rate_slots`` (seconds since the epoch), taken with
  ``INSERT … ON CONFLICT (key) DO UPDATE … WHERE <a slot is free> RETURNING`` in the claim's own
  transaction, so the limit holds for the whole cluster. The keys are taken in key order (two
  claims sharing keys never deadlock); a refused one rolls the whole claim back, slots already
  taken included.
- **Cap and opt-outs** are read in the enqueue's transaction. The cap counts the installation's
  ``queued`` messages without locking them: two enqueues of different conversations at the same
  instant may pass it by one each (it is backpressure, not an invariant).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final, TypeVar

from .._base import (
    UNSET,
    AttemptRecord,
    Conflict,
    EventRecord,
    MessageRecord,
    MessageState,
    RecordNotFound,
    Unset,
)
from .._opt_outs import OPT_OUT_COLUMNS
from .._opt_outs import opt_out as opt_out_record
from .._queue import (
    ATTEMPT_LOG_SIZE,
    ClaimOutcome,
    OptedOut,
    OutcomeEvent,
    QueueFull,
    RateSlot,
    finish_changes,
    slot_wait,
)
from .._queue import outcome_event as outcome_event_of
from .._rows import (
    FINISHED_COLUMNS,
    MESSAGE_COLUMNS,
    aware_time,
    columns,
    encode_ids,
    encode_time,
    utc_time,
)
from ._inbound import append_events
from ._pool import PooledConnection, Row, RunAgain
from ._sql import INSERT_MESSAGE, INSERT_MESSAGE_PART, ROWS, SELECT_MESSAGE

__all__ = ["QueueMethods"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Transaction-level advisory locks take two int4 keys: (kind, hashtext(conversation)).
_LOCK_CONVERSATION: Final = 0x6D73_6702

# A slot is free when the new theoretical arrival time is within the burst. Epoch seconds as
# double precision carry about 0.2 µs at today's dates, so a slot exactly at the edge is
# compared with a microsecond to spare rather than refused for a rounding error.
_SLOT_TOLERANCE_S: Final = 1e-6

_COLUMNS: Final = columns(MESSAGE_COLUMNS)
_message = ROWS.message

_WAITING = "('queued', 'sending')"

# A message's place in its conversation: its send time, else when it was accepted (so a message
# scheduled for tomorrow does not hold back today's).
_ORDER_KEY: Final = "COALESCE({a}.send_at, {a}.created_at)"

# An earlier ordered message of the conversation of `m` still waiting: `m` must not leave yet.
_BLOCKED = f"""EXISTS (
    SELECT 1 FROM messages AS e
    WHERE e.installation_id = m.installation_id AND e.from_number = m.from_number
      AND e.to_number = m.to_number AND e.state IN {_WAITING} AND e.ordered AND e.id <> m.id
      AND ({_ORDER_KEY.format(a="e")}, e.created_at, e.id)
          < ({_ORDER_KEY.format(a="m")}, m.created_at, m.id)
)"""  # noqa: S608 - constants

LOCK_CONVERSATION = f"""
SELECT pg_advisory_xact_lock({_LOCK_CONVERSATION}, hashtext($1 || chr(31) || $2 || chr(31) || $3))
"""

# One look, after the conversation's lock, at what may keep a new message from leaving at once:
# $1 installation, $2 $3 the opt-out's (from, to), $4 $5 the conversation's (from, to), $6 the
# message's place — whether its recipient opted out, and whether an ordered message of its
# conversation waits before it.
MAY_LEAVE = f"""
SELECT
    EXISTS (SELECT 1 FROM opt_outs WHERE installation_id = $1 AND from_number = $2
            AND to_number = $3),
    EXISTS (
        SELECT 1 FROM messages AS e
        WHERE installation_id = $1 AND from_number = $4 AND to_number = $5
          AND state IN {_WAITING} AND ordered AND {_ORDER_KEY.format(a="e")} <= $6
    )
"""  # noqa: S608 - constants

# Any unique key taken (the id, or the organisation's idempotency key): nothing returned.
ENQUEUE_MESSAGE = INSERT_MESSAGE + f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}"

SELECT_OPT_OUT = f"""
SELECT {columns(OPT_OUT_COLUMNS)} FROM opt_outs
WHERE installation_id = $1 AND from_number = $2 AND to_number = $3
"""  # noqa: S608 - constants

COUNT_QUEUED = """
SELECT COUNT(*) FROM messages
WHERE installation_id = $1 AND state IN ('queued', 'sending') AND state = 'queued'
"""

# $1 key, $2 now, $3 cost, $4 interval, $5 burst (seconds, epoch seconds): RateSlot's rule. A
# new key is idle, so its first slot is always free. Nothing returned: no slot (the row stays
# locked until the transaction ends, so the tat read next is the one that refused it).
TAKE_RATE_SLOT = f"""
INSERT INTO rate_slots AS r (key, tat) VALUES ($1, $2::float8 + $3::float8 * $4::float8)
ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, $2) + $3 * $4
WHERE GREATEST(r.tat, $2) + $3 * $4 - $2 <= $5::float8 * $4 + {_SLOT_TOLERANCE_S}
   OR r.tat <= $2
RETURNING tat
"""  # noqa: S608 - constants

SELECT_RATE_TAT = "SELECT tat FROM rate_slots WHERE key = $1"

# $1 now, $2 the most per installation: oldest first, each installation's oldest `$2`.
DUE_MESSAGES = f"""
WITH due AS (
    SELECT m.*, row_number() OVER (
        PARTITION BY m.installation_id ORDER BY m.created_at, m.id
    ) AS place
    FROM messages AS m
    WHERE m.state = 'queued' AND m.next_attempt_at <= $1 AND (NOT m.ordered OR NOT {_BLOCKED})
)
SELECT {_COLUMNS} FROM due WHERE place <= $2 ORDER BY place, created_at, id LIMIT $2
"""  # noqa: S608 - constants

NEXT_DUE_AT = "SELECT MIN(next_attempt_at) FROM messages WHERE state = 'queued'"
QUEUE_DEPTH = "SELECT COUNT(*) FROM messages WHERE state = 'queued'"

# $1 id, $2 now: the message, locked, with whether it may leave now.
# $1 id: the message's conversation locked, read and locked in one statement (a message's
# conversation never changes, so reading it before the lock is safe); no row: no such message.
LOCK_MESSAGE_CONVERSATION = f"""
SELECT pg_advisory_xact_lock(
    {_LOCK_CONVERSATION},
    hashtext(installation_id || chr(31) || from_number || chr(31) || to_number)
) FROM messages WHERE id = $1
"""  # noqa: S608 - constants

# $1 id, $2 now, $3 owner, $4 lease until: the message leased when it is claimable — queued,
# due, and the head of its conversation — in one statement (its own snapshot, taken after the
# conversation's lock); no row when it is not.
CLAIM_IF_CLAIMABLE = f"""
UPDATE messages AS m SET state = 'sending', lease_owner = $3, lease_until = $4,
    next_attempt_at = NULL, updated_at = $2
WHERE m.id = $1 AND m.state = 'queued' AND m.next_attempt_at <= $2
  AND (NOT m.ordered OR NOT {_BLOCKED})
RETURNING {columns(MESSAGE_COLUMNS, "m")}
"""  # noqa: S608 - constants

SELECT_FOR_FINISH = SELECT_MESSAGE + " WHERE id = $1 FOR UPDATE"

# $1 id, then the new values of what an attempt's end changes.
FINISH_ATTEMPT = f"""
UPDATE messages SET state = $2, provider_message_id = $3, provider_status = $4, attempts = $5,
    error = $6, reply_json = $7, provider_message_ids_json = $8, next_attempt_at = $9,
    lease_owner = NULL, lease_until = NULL, attempt_log_json = $10, updated_at = $11
WHERE id = $1
RETURNING {_COLUMNS}
"""  # noqa: S608 - constants

# The end of an attempt in one statement that commits on its own (one round trip instead of a
# transaction's four), when it is all there is to write: the message under the lease, not asking
# for its outcome as an event (notify), its attempt log short of the bound. $1 id, $2 state,
# then (changed?, value) pairs $3-$4 provider id, $5-$6 status, $7-$8 error, $9-$10 reply,
# $11-$12 the provider ids; $13 attempts, $14 next attempt, $15 the attempt (JSON, NULL: none),
# $16 now, $17 the lease's owner (NULL: any lease of a sending message). A receipt that moved the
# message to delivered or failed while it was sending is kept. No row: finish_attempt's
# transaction decides (notify, a long log, another lease, no such message). Only what may differ
# from the caller's copy is read back (FINISHED_COLUMNS).
FINISH_AT_ONCE = f"""
UPDATE messages SET
    state = CASE WHEN state IN ('delivered', 'failed') THEN state ELSE $2::text END,
    provider_message_id = CASE WHEN $3 THEN $4 ELSE provider_message_id END,
    provider_status = CASE WHEN $5 THEN $6 ELSE provider_status END,
    error = CASE WHEN $7 THEN $8 ELSE error END,
    reply_json = CASE WHEN $9 THEN $10 ELSE reply_json END,
    provider_message_ids_json = CASE WHEN $11 THEN $12 ELSE provider_message_ids_json END,
    attempts = $13, next_attempt_at = $14, lease_owner = NULL, lease_until = NULL,
    attempt_log_json = CASE
        WHEN $15::text IS NULL THEN attempt_log_json
        WHEN attempt_log_json IS NULL THEN json_build_array($15::json)::text
        ELSE (attempt_log_json::jsonb || jsonb_build_array($15::jsonb))::text END,
    updated_at = $16
WHERE id = $1 AND NOT notify AND lease_owner IS NOT NULL
  AND CASE WHEN $17::text IS NULL THEN state = 'sending'
      ELSE lease_owner = $17 AND state IN ('sending', 'sent', 'delivered', 'failed') END
  AND COALESCE(json_array_length(attempt_log_json::json), 0) < {ATTEMPT_LOG_SIZE}
RETURNING {columns(FINISHED_COLUMNS)}, json_array_length(attempt_log_json::json)
"""  # noqa: S608 - constants

EXPIRED_MESSAGE_LEASES = f"""
{SELECT_MESSAGE} WHERE state IN ('queued', 'sending') AND state = 'sending' AND lease_until < $1
ORDER BY lease_until, id LIMIT $2
"""

REQUEST_OUTCOME = f"""
UPDATE messages SET notify = true WHERE id = $1 AND state IN {_WAITING}
RETURNING {_COLUMNS}
"""  # noqa: S608 - constants

SELECT_CONVERSATION = "SELECT installation_id, from_number, to_number FROM messages WHERE id = $1"

# A failure that sent nothing, put back for a repeat of its key: $1 id, $2 now.
REQUEUE_MESSAGE = f"""
UPDATE messages SET state = 'queued', next_attempt_at = $2, lease_owner = NULL,
    lease_until = NULL, updated_at = $2
WHERE id = $1 AND state = 'failed' AND reply_json IS NULL
RETURNING {_COLUMNS}
"""  # noqa: S608 - constants

CANCEL_MESSAGE = f"""
UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, updated_at = $2
WHERE id = $1 AND state = 'queued'
RETURNING {_COLUMNS}
"""  # noqa: S608 - constants


# $1 orgs, $2 installation, $3 states (NULL: any of each), $4 created at or after, $5 created
# before, $6/$7 the (created_at, id) of the last message of the previous page, $8 limit.
class _Refused(Exception):
    """Raised inside a claim's transaction to roll it back (slots already taken included) when a
    rate has no slot; carries what the claim came to."""

    def __init__(self, outcome: ClaimOutcome) -> None:
        super().__init__(outcome.key)
        self.outcome = outcome


def _epoch_s(when: datetime) -> float:
    return encode_time(when) / 1_000_000


async def _take_slots(
    conn: PooledConnection, rates: Sequence[RateSlot], now: datetime
) -> ClaimOutcome | None:
    """Take a slot of every rate, in key order; the refusal of the first rate without one (the
    caller then rolls back what was taken), or None when every slot was taken."""
    now_s = _epoch_s(now)
    for rate in sorted(rates, key=lambda r: r.key):
        taken = await conn.fetchval(
            TAKE_RATE_SLOT, rate.key, now_s, rate.cost, rate.interval_s, rate.burst
        )
        if taken is not None:
            continue
        tat = float(await conn.fetchval(SELECT_RATE_TAT, rate.key))
        return ClaimOutcome(retry_in_s=slot_wait(tat, now_s, rate), key=rate.key)
    return None


async def _lock_conversation(conn: PooledConnection, message: MessageRecord) -> None:
    await conn.execute(
        LOCK_CONVERSATION, message.installation_id, message.from_number, message.to_number
    )


def _kept(value: T | Unset, current: T) -> T:
    return current if isinstance(value, Unset) else value


class QueueMethods:
    """The send queue of the PostgreSQL store; it runs on the store's ``_read``/``_write``/
    ``_statement``."""

    async def _read(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _statement(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _write(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    # --- enqueue and claim --------------------------------------------------------------------

    async def enqueue_message(
        self,
        record: MessageRecord,
        *,
        claim: tuple[str, datetime, Sequence[RateSlot]] | None = None,
        now: datetime,
        max_queued: int = 0,
        opt_out: tuple[str, str] | None = None,
    ) -> tuple[MessageRecord, bool]:
        key = record.idempotency_key
        looked_up = (record.from_number, record.to_number) if opt_out is None else opt_out
        due = record.send_at is None or record.send_at <= now

        async def existing(conn: PooledConnection) -> MessageRecord | None:
            if key is None:
                return None
            row = await conn.fetchrow(
                SELECT_MESSAGE + " WHERE org_id = $1 AND idempotency_key = $2",
                record.org_id,
                key,
            )
            return None if row is None else _message(row)

        async def op(conn: PooledConnection) -> tuple[MessageRecord, bool]:
            if record.ordered:
                await _lock_conversation(conn, record)
            held = await existing(conn)
            if held is not None:
                return held, False
            looks = await conn.fetchrow(
                MAY_LEAVE,
                record.installation_id,
                *looked_up,
                record.from_number,
                record.to_number,
                aware_time(record.send_at or now),
            )
            assert looks is not None  # one row, always
            opted_out, waiting = looks
            if opted_out:
                opted = await conn.fetchrow(SELECT_OPT_OUT, record.installation_id, *looked_up)
                if opted is not None:
                    raise OptedOut(opt_out_record(ROWS, opted))
            stored = None
            if not (record.ordered and waiting):
                stored = await self._leave_now(conn, record, claim, now)
            if stored is None:
                if max_queued > 0:
                    queued = await conn.fetchval(COUNT_QUEUED, record.installation_id)
                    if int(queued) >= max_queued:
                        raise QueueFull(record.installation_id, max_queued)
                stored = replace(
                    record,
                    state=MessageState.QUEUED,
                    next_attempt_at=now if due else record.send_at,
                    lease_owner=None,
                    lease_until=None,
                )
            row = await conn.fetchrow(ENQUEUE_MESSAGE, *ROWS.message_params(stored))
            if row is not None:
                return _message(row), True
            # The id or the key is held by a message committed meanwhile: decide from scratch
            # (the slots just taken are rolled back), where the key's holder is found first.
            if await conn.fetchval("SELECT 1 FROM messages WHERE id = $1", record.id):
                raise Conflict(f"message {record.id!r} already exists")
            raise RunAgain

        return await self._write(op)

    @staticmethod
    async def _leave_now(
        conn: PooledConnection,
        record: MessageRecord,
        claim: tuple[str, datetime, Sequence[RateSlot]] | None,
        now: datetime,
    ) -> MessageRecord | None:
        """The record as it is stored ``sending`` when it may leave at once (no earlier message
        of its conversation waits: the caller looked) — the slots taken, in a savepoint of the
        caller's transaction (none without rates) — else None (nothing taken)."""
        if claim is None or (record.send_at is not None and record.send_at > now):
            return None
        owner, lease_until, rates = claim
        if rates:
            savepoint = conn.raw.transaction()
            await savepoint.start()
            if await _take_slots(conn, rates, now) is not None:
                await savepoint.rollback()
                return None
            await savepoint.commit()
        return replace(
            record,
            state=MessageState.SENDING,
            next_attempt_at=None,
            lease_owner=owner,
            lease_until=lease_until,
        )

    async def claim_queued(
        self,
        message_id: str,
        *,
        owner: str,
        lease_until: datetime,
        rates: Sequence[RateSlot],
        now: datetime,
    ) -> ClaimOutcome:
        async def op(conn: PooledConnection) -> ClaimOutcome:
            if await conn.fetchrow(LOCK_MESSAGE_CONVERSATION, message_id) is None:
                return ClaimOutcome()
            # Under the lock: whatever another claim or enqueue did is committed and seen here.
            claimed = await conn.fetchrow(
                CLAIM_IF_CLAIMABLE, message_id, aware_time(now), owner, aware_time(lease_until)
            )
            if claimed is None:
                return ClaimOutcome()
            # The slots last, so that the rates' rows — which every claim of the installation
            # needs, on every replica — stay locked for as little as the rest and the commit.
            refused = await _take_slots(conn, rates, now)
            if refused is not None:
                raise _Refused(refused)  # the lease above is rolled back with it
            return ClaimOutcome(message=_message(claimed))

        try:
            return await self._write(op)
        except _Refused as refused:
            return refused.outcome

    async def finish_attempt(
        self,
        message: MessageRecord,
        *,
        owner: str | None,
        state: MessageState,
        attempt: AttemptRecord | None,
        attempts: int,
        provider_message_id: str | Unset | None = UNSET,
        provider_status: int | Unset | None = UNSET,
        error: str | Unset | None = UNSET,
        reply_json: str | Unset | None = UNSET,
        provider_message_ids: Sequence[str] | Unset = UNSET,
        next_attempt_at: datetime | None = None,
        outcome_event: OutcomeEvent | None = None,
        now: datetime,
    ) -> tuple[MessageRecord | None, EventRecord | None]:
        state = MessageState(state)
        held, message_id = message, message.id
        ids = provider_message_ids
        if isinstance(ids, Unset) or not ids:  # no parts to insert: maybe one statement
            at_once = (
                message_id,
                state.value,
                *finish_changes(provider_message_id, provider_status, error, reply_json, ids),
                attempts,
                None if next_attempt_at is None else aware_time(next_attempt_at),
                None if attempt is None else ROWS.encode_attempt(attempt),
                aware_time(now),
                owner,
            )

            async def finished(conn: PooledConnection) -> Row | None:
                return await conn.fetchrow(FINISH_AT_ONCE, *at_once)

            row = await self._statement(finished)
            if row is not None:
                done = ROWS.finished_message(held, row, attempts, attempt, next_attempt_at, now)
                if done is None:  # attempts the caller's copy does not hold: read it whole
                    whole = await self._read(
                        lambda conn: conn.fetchrow(SELECT_MESSAGE + " WHERE id = $1", message_id)
                    )
                    if whole is None:  # purged in between: as if it had never been
                        raise RecordNotFound("message", message_id)
                    done = _message(whole)
                return done, None

        async def op(conn: PooledConnection) -> tuple[MessageRecord | None, EventRecord | None]:
            row = await conn.fetchrow(SELECT_FOR_FINISH, message_id)
            if row is None:
                raise RecordNotFound("message", message_id)
            current = _message(row)
            if owner is None:
                leased = current.state is MessageState.SENDING and current.lease_owner is not None
            else:
                leased = current.lease_owner == owner and current.state in (
                    MessageState.SENDING,
                    MessageState.SENT,
                    MessageState.DELIVERED,
                    MessageState.FAILED,
                )
            if not leased:
                return None, None
            # A receipt that overtook the answer moved it to its outcome: that stays.
            receipt_moved = current.state in (MessageState.DELIVERED, MessageState.FAILED)
            target = current.state if receipt_moved else state
            log = current.attempt_log if attempt is None else (*current.attempt_log, attempt)
            ids = _kept(provider_message_ids, current.provider_message_ids)
            updated = await conn.fetchrow(
                FINISH_ATTEMPT,
                message_id,
                target.value,
                _kept(provider_message_id, current.provider_message_id),
                _kept(provider_status, current.provider_status),
                attempts,
                _kept(error, current.error),
                _kept(reply_json, current.reply_json),
                encode_ids(ids),
                None if next_attempt_at is None else aware_time(next_attempt_at),
                ROWS.encode_attempt_log(log[-ATTEMPT_LOG_SIZE:]),
                aware_time(now),
            )
            message = _message(updated)
            if not isinstance(provider_message_ids, Unset):
                parts = ROWS.part_params(message, provider_message_ids)
                if parts:
                    await conn.executemany(INSERT_MESSAGE_PART, parts)
            if (
                outcome_event is None
                or not current.notify
                or target not in (MessageState.SENT, MessageState.FAILED)
            ):
                return message, None
            # Last in the transaction: the cursor counter stays locked only until the commit.
            new_event = outcome_event_of(outcome_event)
            params = ROWS.event_params(new_event)
            (event,) = await append_events(conn, [(new_event, params)])
            return message, event

        return await self._write(op)

    # --- the queue's reads ----------------------------------------------------------------------

    async def due_messages(self, now: datetime, *, limit: int) -> tuple[MessageRecord, ...]:
        async def fn(conn: PooledConnection) -> tuple[MessageRecord, ...]:
            rows = await conn.fetch(DUE_MESSAGES, aware_time(now), limit)
            return tuple(_message(row) for row in rows)

        return await self._read(fn)

    async def next_due_at(self) -> datetime | None:
        async def fn(conn: PooledConnection) -> datetime | None:
            value = await conn.fetchval(NEXT_DUE_AT)
            return None if value is None else utc_time(value)

        return await self._read(fn)

    async def queue_depth(self) -> int:
        async def fn(conn: PooledConnection) -> int:
            return int(await conn.fetchval(QUEUE_DEPTH))

        return await self._read(fn)

    async def expired_leases(self, now: datetime, *, limit: int) -> tuple[MessageRecord, ...]:
        async def fn(conn: PooledConnection) -> tuple[MessageRecord, ...]:
            rows = await conn.fetch(EXPIRED_MESSAGE_LEASES, aware_time(now), limit)
            return tuple(_message(row) for row in rows)

        return await self._read(fn)

    async def count_queued(self, installation_id: str) -> int:
        async def fn(conn: PooledConnection) -> int:
            return int(await conn.fetchval(COUNT_QUEUED, installation_id))

        return await self._read(fn)

    # --- changes asked for by the service -------------------------------------------------------

    async def request_outcome(self, message_id: str) -> MessageRecord:
        async def op(conn: PooledConnection) -> MessageRecord:
            row = await conn.fetchrow(REQUEST_OUTCOME, message_id)
            if row is None:  # it has its outcome already (or does not exist)
                row = await conn.fetchrow(SELECT_MESSAGE + " WHERE id = $1", message_id)
            if row is None:
                raise RecordNotFound("message", message_id)
            return _message(row)

        return await self._statement(op)

    async def requeue_message(self, message_id: str, *, now: datetime) -> MessageRecord | None:
        async def op(conn: PooledConnection) -> MessageRecord | None:
            # Queued again it holds its conversation back: the same lock as an enqueue, so that
            # no enqueue of the conversation goes straight to sending past it.
            conversation = await conn.fetchrow(SELECT_CONVERSATION, message_id)
            if conversation is None:
                return None
            await conn.execute(LOCK_CONVERSATION, *conversation)
            row = await conn.fetchrow(REQUEUE_MESSAGE, message_id, aware_time(now))
            return None if row is None else _message(row)

        return await self._write(op)

    async def cancel_message(self, message_id: str, *, now: datetime) -> tuple[MessageRecord, bool]:
        async def op(conn: PooledConnection) -> tuple[MessageRecord, bool]:
            row = await conn.fetchrow(CANCEL_MESSAGE, message_id, aware_time(now))
            if row is not None:
                return _message(row), True
            row = await conn.fetchrow(SELECT_MESSAGE + " WHERE id = $1", message_id)
            if row is None:
                raise RecordNotFound("message", message_id)
            return _message(row), False

        return await self._statement(op)
