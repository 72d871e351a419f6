"""The SQLite store's send queue (docs/delivery.md): the methods
:class:`~server.store.sqlite.SqliteStore` gets from :class:`QueueMethods`.

The one writer thread makes every rule here a plain check-then-write inside one transaction: no
other writer can come between the check and the write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final, TypeVar

from .._base import (
    UNSET,
    AttemptRecord,
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
    taken_tat,
)
from .._queue import outcome_event as outcome_event_of
from .._rows import FINISHED_COLUMNS, MESSAGE_COLUMNS, columns, decode_time, encode_time
from ._sql import (
    INSERT_EVENT,
    INSERT_MESSAGE,
    INSERT_MESSAGE_PART,
    ROWS,
    SELECT_MESSAGE,
)

__all__ = ["QueueMethods"]

T = TypeVar("T")

_message = ROWS.message

_COLUMNS: Final = columns(MESSAGE_COLUMNS)
_COLUMNS_M: Final = columns(MESSAGE_COLUMNS, "m")

# A message's place in its conversation: its send time, else when it was accepted.
_ORDER_KEY: Final = "COALESCE({a}.send_at, {a}.created_at)"

# An earlier ordered message of m's conversation that is still waiting: m must not leave yet.
_WAITING_BEFORE: Final = f"""
EXISTS (
    SELECT 1 FROM messages p
    WHERE p.installation_id = m.installation_id AND p.from_number = m.from_number
      AND p.to_number = m.to_number AND p.state IN ('queued', 'sending') AND p.ordered
      AND p.id <> m.id
      AND ({_ORDER_KEY.format(a="p")} < {_ORDER_KEY.format(a="m")}
           OR ({_ORDER_KEY.format(a="p")} = {_ORDER_KEY.format(a="m")}
               AND (p.created_at < m.created_at
                    OR (p.created_at = m.created_at AND p.id < m.id))))
)"""  # noqa: S608 - constants


# ?1 now, ?2 per installation, ?3 limit. INDEXED BY: left to itself, the planner walked every
# message in messages_by_installation's order (which spares the window its sort), 450 ms with a
# million messages sent, every time the queue looked; the queued messages are a few.
_DUE: Final = f"""
SELECT {_COLUMNS} FROM (
    SELECT {_COLUMNS_M}, ROW_NUMBER() OVER (
        PARTITION BY m.installation_id ORDER BY m.created_at, m.id
    ) AS rank
    FROM messages m INDEXED BY messages_queued
    WHERE m.state = 'queued' AND m.next_attempt_at <= ?1
      AND NOT (m.ordered AND {_WAITING_BEFORE})
)
WHERE rank <= ?2 ORDER BY rank, created_at, id LIMIT ?3
"""  # noqa: S608 - constants

_CLAIMABLE: Final = f"""
SELECT {_COLUMNS_M} FROM messages m
WHERE m.id = ?1 AND m.state = 'queued' AND m.next_attempt_at <= ?2
  AND NOT (m.ordered AND {_WAITING_BEFORE})
"""  # noqa: S608 - constants

_LEASE: Final = f"""
UPDATE messages SET state = 'sending', lease_owner = ?2, lease_until = ?3, next_attempt_at = NULL,
    updated_at = ?4
WHERE id = ?1
RETURNING {_COLUMNS}
"""  # noqa: S608 - constants

# ?1 id, ?2 state, ?3 attempts, ?4 the attempt as JSON (NULL: none), ?5 next attempt, then
# flag/value pairs, ?16 now, ?17 the lease's owner (NULL: any lease of a sending message). A
# receipt that moved the message to delivered or failed while it was sending is kept. Only what
# may differ from the caller's copy is read back (FINISHED_COLUMNS).
_FINISH: Final = f"""
UPDATE messages SET
    state = CASE WHEN state IN ('delivered', 'failed') THEN state ELSE ?2 END,
    attempts = ?3,
    attempt_log_json = CASE
        WHEN ?4 IS NULL THEN attempt_log_json
        WHEN attempt_log_json IS NULL THEN json_array(json(?4))
        ELSE json_insert(attempt_log_json, '$[#]', json(?4)) END,
    next_attempt_at = ?5,
    provider_message_id = CASE WHEN ?6 THEN ?7 ELSE provider_message_id END,
    provider_status = CASE WHEN ?8 THEN ?9 ELSE provider_status END,
    error = CASE WHEN ?10 THEN ?11 ELSE error END,
    reply_json = CASE WHEN ?12 THEN ?13 ELSE reply_json END,
    provider_message_ids_json = CASE WHEN ?14 THEN ?15 ELSE provider_message_ids_json END,
    lease_owner = NULL, lease_until = NULL, updated_at = ?16
WHERE id = ?1 AND lease_owner IS NOT NULL
  AND CASE WHEN ?17 IS NULL THEN state = 'sending' ELSE lease_owner = ?17 END
RETURNING {columns(FINISHED_COLUMNS)}, json_array_length(attempt_log_json)
"""  # noqa: S608 - constants

_OPT_OUT: Final = f"""
SELECT {columns(OPT_OUT_COLUMNS)} FROM opt_outs
WHERE installation_id = ? AND from_number = ? AND to_number = ?
"""  # noqa: S608 - constants

# One look at what may keep a new message from leaving at once: ?1 installation, ?2 ?3 the
# opt-out's (from, to), ?4 ?5 the conversation's (from, to), ?6 its place (see above).
_MAY_LEAVE: Final = f"""
SELECT
    EXISTS (SELECT 1 FROM opt_outs WHERE installation_id = ?1 AND from_number = ?2
            AND to_number = ?3),
    EXISTS (
        SELECT 1 FROM messages p
        WHERE p.installation_id = ?1 AND p.from_number = ?4 AND p.to_number = ?5
          AND p.state IN ('queued', 'sending') AND p.ordered AND {_ORDER_KEY.format(a="p")} <= ?6
    )
"""  # noqa: S608 - constants

_TAT: Final = "SELECT tat FROM rate_slots WHERE key = ?"
_PUT_TAT: Final = """
INSERT INTO rate_slots (key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET tat = excluded.tat
"""

_REQUEST_OUTCOME: Final = f"""
UPDATE messages SET notify = 1 WHERE id = ? AND state IN ('queued', 'sending')
RETURNING {_COLUMNS}
"""  # noqa: S608 - constants

# ?1 id, ?2 now
_REQUEUE: Final = f"""
UPDATE messages SET state = 'queued', next_attempt_at = ?2, updated_at = ?2
WHERE id = ?1 AND state = 'failed' AND reply_json IS NULL
RETURNING {_COLUMNS}
"""  # noqa: S608 - constants

_CANCEL: Final = f"""
UPDATE messages SET state = 'cancelled', next_attempt_at = NULL, updated_at = ?2
WHERE id = ?1 AND state = 'queued'
RETURNING {_COLUMNS}
"""  # noqa: S608 - constants


def _refused(conn: sqlite3.Connection, rates: Sequence[RateSlot], now: float) -> ClaimOutcome:
    """The first rate without a slot at ``now`` (as a refusal), or an empty outcome."""
    for slot in rates:
        row = conn.execute(_TAT, (slot.key,)).fetchone()
        wait = slot_wait(None if row is None else row[0], now, slot)
        if wait > 0:
            return ClaimOutcome(retry_in_s=wait, key=slot.key)
    return ClaimOutcome()


def _take(conn: sqlite3.Connection, rates: Sequence[RateSlot], now: float) -> None:
    for slot in rates:
        row = conn.execute(_TAT, (slot.key,)).fetchone()
        conn.execute(_PUT_TAT, (slot.key, taken_tat(None if row is None else row[0], now, slot)))


def _epoch_s(when: datetime) -> float:
    return encode_time(when) / 1_000_000


class QueueMethods:
    """The send queue of the SQLite store; it runs on the store's ``_write``/``_read``."""

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def enqueue_message(
        self,
        record: MessageRecord,
        *,
        claim: tuple[str, datetime, Sequence[RateSlot]] | None = None,
        now: datetime,
        max_queued: int = 0,
        opt_out: tuple[str, str] | None = None,
    ) -> tuple[MessageRecord, bool]:
        stamp = encode_time(now)
        due = record.send_at is None or record.send_at <= now
        order_key = encode_time(record.send_at) if record.send_at is not None else stamp
        key = record.idempotency_key

        def op(conn: sqlite3.Connection) -> tuple[MessageRecord, bool]:
            if key is not None:
                row = conn.execute(
                    SELECT_MESSAGE + " WHERE org_id = ? AND idempotency_key = ?",
                    (record.org_id, key),
                ).fetchone()
                if row is not None:
                    return _message(row), False
            address = (record.installation_id, record.from_number, record.to_number)
            looked_up = address if opt_out is None else (record.installation_id, *opt_out)
            opted_out, waiting = conn.execute(
                _MAY_LEAVE, (*looked_up, *address[1:], order_key)
            ).fetchone()
            opted = conn.execute(_OPT_OUT, looked_up).fetchone() if opted_out else None
            if opted is not None:
                raise OptedOut(opt_out_record(ROWS, opted))
            leave = (
                claim is not None
                and due
                and not (record.ordered and waiting)
                and _refused(conn, claim[2], stamp / 1_000_000).retry_in_s is None
            )
            if leave:
                assert claim is not None
                owner, lease_until, rates = claim
                _take(conn, rates, stamp / 1_000_000)
                stored = record
                if (record.state, record.lease_owner, record.lease_until) != (
                    MessageState.SENDING,
                    owner,
                    lease_until,
                ) or record.next_attempt_at is not None:
                    stored = replace(
                        record,
                        state=MessageState.SENDING,
                        lease_owner=owner,
                        lease_until=lease_until,
                        next_attempt_at=None,
                    )
            else:
                if max_queued > 0:
                    # Kept by triggers (migration 0010_queued_counts): not a count of the queue.
                    row = conn.execute(
                        "SELECT queued FROM queued_counts WHERE installation_id = ?",
                        (record.installation_id,),
                    ).fetchone()
                    if row is not None and row[0] >= max_queued:
                        raise QueueFull(record.installation_id, max_queued)
                stored = replace(
                    record,
                    state=MessageState.QUEUED,
                    lease_owner=None,
                    lease_until=None,
                    next_attempt_at=record.send_at if not due else now,
                )
            conn.execute(INSERT_MESSAGE, ROWS.message_params(stored))
            return stored, True

        return await self._write(op)

    async def due_messages(self, now: datetime, *, limit: int) -> tuple[MessageRecord, ...]:
        params = (encode_time(now), limit, limit)

        def fn(conn: sqlite3.Connection) -> tuple[MessageRecord, ...]:
            return tuple(_message(row) for row in conn.execute(_DUE, params))

        return await self._read(fn)

    async def next_due_at(self) -> datetime | None:
        def fn(conn: sqlite3.Connection) -> datetime | None:
            (value,) = conn.execute(
                "SELECT MIN(next_attempt_at) FROM messages WHERE state = 'queued'"
            ).fetchone()
            return None if value is None else decode_time(value)

        return await self._read(fn)

    async def claim_queued(
        self,
        message_id: str,
        *,
        owner: str,
        lease_until: datetime,
        rates: Sequence[RateSlot],
        now: datetime,
    ) -> ClaimOutcome:
        stamp = encode_time(now)

        def op(conn: sqlite3.Connection) -> ClaimOutcome:
            if conn.execute(_CLAIMABLE, (message_id, stamp)).fetchone() is None:
                return ClaimOutcome()
            refused = _refused(conn, rates, stamp / 1_000_000)
            if refused.retry_in_s is not None:
                return refused
            _take(conn, rates, stamp / 1_000_000)
            row = conn.execute(
                _LEASE, (message_id, owner, encode_time(lease_until), stamp)
            ).fetchone()
            return ClaimOutcome(message=_message(row))

        return await self._write(op)

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
        held, message_id = message, message.id
        ids = provider_message_ids
        params = (
            message_id,
            MessageState(state).value,
            attempts,
            None if attempt is None else ROWS.encode_attempt(attempt),
            None if next_attempt_at is None else encode_time(next_attempt_at),
            *finish_changes(provider_message_id, provider_status, error, reply_json, ids),
            encode_time(now),
            owner,
        )

        def op(conn: sqlite3.Connection) -> tuple[MessageRecord | None, EventRecord | None]:
            row = conn.execute(_FINISH, params).fetchone()
            if row is None:
                if conn.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone():
                    return None, None  # not under that lease: another process took it over
                raise RecordNotFound("message", message_id)
            message = ROWS.finished_message(held, row, attempts, attempt, next_attempt_at, now)
            if message is None:  # attempts the caller's copy does not hold: read it whole
                message = _message(
                    conn.execute(SELECT_MESSAGE + " WHERE id = ?", (message_id,)).fetchone()
                )
            if len(message.attempt_log) > ATTEMPT_LOG_SIZE:
                kept = message.attempt_log[-ATTEMPT_LOG_SIZE:]
                conn.execute(
                    "UPDATE messages SET attempt_log_json = ? WHERE id = ?",
                    (ROWS.encode_attempt_log(kept), message_id),
                )
                message = replace(message, attempt_log=kept)
            if not isinstance(ids, Unset) and ids:
                conn.executemany(INSERT_MESSAGE_PART, ROWS.part_params(message, ids))
            published = None
            if (
                outcome_event is not None
                and message.notify
                and message.state is state
                and state in (MessageState.SENT, MessageState.FAILED)
            ):
                event = outcome_event_of(outcome_event)
                cursor = conn.execute(INSERT_EVENT, ROWS.event_params(event)).lastrowid
                assert cursor is not None
                published = EventRecord.appended(event, cursor)
            return message, published

        return await self._write(op)

    async def expired_leases(self, now: datetime, *, limit: int) -> tuple[MessageRecord, ...]:
        params = (encode_time(now), limit)

        def fn(conn: sqlite3.Connection) -> tuple[MessageRecord, ...]:
            rows = conn.execute(
                SELECT_MESSAGE + " WHERE state IN ('queued', 'sending') AND state = 'sending'"
                " AND lease_until < ? ORDER BY lease_until LIMIT ?",
                params,
            )
            return tuple(_message(row) for row in rows)

        return await self._read(fn)

    async def request_outcome(self, message_id: str) -> MessageRecord:
        def op(conn: sqlite3.Connection) -> MessageRecord:
            row = conn.execute(_REQUEST_OUTCOME, (message_id,)).fetchone()
            if row is None:
                row = conn.execute(SELECT_MESSAGE + " WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise RecordNotFound("message", message_id)
            return _message(row)

        return await self._write(op)

    async def requeue_message(self, message_id: str, *, now: datetime) -> MessageRecord | None:
        stamp = encode_time(now)

        def op(conn: sqlite3.Connection) -> MessageRecord | None:
            row = conn.execute(_REQUEUE, (message_id, stamp)).fetchone()
            return None if row is None else _message(row)

        return await self._write(op)

    async def cancel_message(self, message_id: str, *, now: datetime) -> tuple[MessageRecord, bool]:
        stamp = encode_time(now)

        def op(conn: sqlite3.Connection) -> tuple[MessageRecord, bool]:
            row = conn.execute(_CANCEL, (message_id, stamp)).fetchone()
            if row is not None:
                return _message(row), True
            row = conn.execute(SELECT_MESSAGE + " WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise RecordNotFound("message", message_id)
            return _message(row), False

        return await self._write(op)

    async def queue_depth(self) -> int:
        def fn(conn: sqlite3.Connection) -> int:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE state = 'queued'"
            ).fetchone()
            return int(count)

        return await self._read(fn)

    async def count_queued(self, installation_id: str) -> int:
        def fn(conn: sqlite3.Connection) -> int:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE installation_id = ?"
                " AND state IN ('queued', 'sending') AND state = 'queued'",
                (installation_id,),
            ).fetchone()
            return int(count)

        return await self._read(fn)
