"""The SQLite store's inbound path: ingest and replay, the event log, held receipts, durable
consumers and retention (the methods :class:`~server.store.sqlite.SqliteStore` gets from
:class:`InboundMethods`)."""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from .. import _keyset_sql as keyset_sql
from .._base import (
    Conflict,
    EventFilter,
    EventRecord,
    HeldReceipt,
    IngestOutcome,
    MessageRecord,
    MessageState,
    MessageTransition,
    NewEvent,
    RecordNotFound,
    WebhookOutcome,
    WebhookRequestRecord,
)
from .._inbound import Inbound
from .._keyset_sql import EventsPurgeStep
from .._media import HOLD_COLUMNS, MediaHold
from .._opt_outs import opt_out_changes
from .._purge_pace import purge_paced
from .._rows import EVENT_RECEIVED_AT, encode_time, frozen_map
from .._transitions import RECEIPT_STATES, part_of
from ._opt_outs import apply_opt_out_changes
from ._sql import (
    APPLY_PART_TRANSITION,
    APPLY_TRANSITION,
    CLAIM_KEY,
    DIALECT,
    EARLIEST_CURSOR,
    EVENT_SELECT,
    EXPIRED_LEASES,
    HELD_COLUMN_LIST,
    INSERT_EVENT,
    INSERT_HELD,
    INSERT_WEBHOOK_REQUEST,
    LATEST_CURSOR,
    LONG_AGO,
    PURGE_STATEMENTS,
    PUT_LEASE,
    ROWS,
    SELECT_WEBHOOK_REQUEST,
)

__all__ = ["InboundMethods"]

T = TypeVar("T")

_event = ROWS.event
_held = ROWS.held
_INSERT_MEDIA_HOLD = (
    f"INSERT INTO media_holds ({', '.join(HOLD_COLUMNS)})"  # noqa: S608 - constants
    f" VALUES ({', '.join('?' * len(HOLD_COLUMNS))})"
)
_webhook_request = ROWS.webhook_request


_PURGE_STEP = EventsPurgeStep.of(DIALECT)


def _read_events(
    conn: sqlite3.Connection, after_cursor: int, event_filter: EventFilter, limit: int
) -> tuple[EventRecord, ...]:
    statement = keyset_sql.read_events(
        DIALECT, EVENT_SELECT, after_cursor=after_cursor, event_filter=event_filter, limit=limit
    )
    return tuple(_event(row) for row in conn.execute(*statement))


def _apply(conn: sqlite3.Connection, inbound: Inbound) -> IngestOutcome:
    """Inside the caller's transaction: dedupe and append, transitions, held receipts, and
    the opt-outs the appended events record or clear (docs/delivery.md, "Opt-outs")."""
    appended: list[EventRecord] = []
    duplicates = 0
    for event, params in inbound.events:
        key = event.dedupe_key
        if (
            key is not None
            and conn.execute(CLAIM_KEY, (key, params[EVENT_RECEIVED_AT])).rowcount == 0
        ):
            duplicates += 1
            continue
        cursor = conn.execute(INSERT_EVENT, params).lastrowid
        assert cursor is not None
        appended.append(EventRecord.appended(event, cursor))
    if inbound.transitions:
        parts = inbound.part_transitions
        if parts:  # (ext) "Several requests per send": the parts move first
            conn.executemany(APPLY_PART_TRANSITION, parts)
        conn.executemany(APPLY_TRANSITION, inbound.transitions)
    for receipt, params, key_time in inbound.held:
        key = receipt.event.dedupe_key
        if key is not None and conn.execute(CLAIM_KEY, (key, key_time)).rowcount == 0:
            duplicates += 1
            continue
        try:
            conn.execute(INSERT_HELD, params)
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"held receipt {receipt.id!r} already exists") from exc
    apply_opt_out_changes(conn, opt_out_changes(appended))
    for hold, params, key_time in inbound.media_holds:
        key = hold.event.dedupe_key
        if key is not None and conn.execute(CLAIM_KEY, (key, key_time)).rowcount == 0:
            duplicates += 1
            continue
        try:
            conn.execute(_INSERT_MEDIA_HOLD, params)
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"media hold {hold.id!r} already exists") from exc
    return IngestOutcome(events=tuple(appended), duplicates=duplicates)


#: What one chunk of a purge should take on the writer thread: the webhooks queued behind it wait
#: for it (measured: chunks of 5,000 rows took 7-27 ms each, and ingest's p99 at 1,000/s went
#: from 6 to 30 ms while a purge of a million rows ran).
PURGE_CHUNK_S = 0.002


class InboundMethods:
    """The inbound half of the SQLite store; it runs on the store's ``_write``/``_read``."""

    _purge_chunk: int

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    # --- inbound: ingest --------------------------------------------------------------------

    async def ingest(
        self,
        request: WebhookRequestRecord,
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition] = (),
        held: Sequence[HeldReceipt] = (),
        media_holds: Sequence[MediaHold] = (),
    ) -> IngestOutcome:
        request_params = ROWS.request_params(request)
        inbound = Inbound.encode(
            ROWS, events, transitions, held, encode_time(datetime.now(UTC)), media_holds
        )

        def op(conn: sqlite3.Connection) -> IngestOutcome:
            try:
                conn.execute(INSERT_WEBHOOK_REQUEST, request_params)
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"webhook request {request.id!r} already exists") from exc
            return _apply(conn, inbound)

        return await self._write(op)

    async def ingest_many(
        self, requests: Sequence[tuple[WebhookRequestRecord, Sequence[NewEvent]]]
    ) -> int:
        stamp = encode_time(datetime.now(UTC))
        rows = [ROWS.request_params(request) for request, _ in requests]
        inbounds = [Inbound.encode(ROWS, events, (), (), stamp) for _, events in requests]

        def op(conn: sqlite3.Connection) -> int:
            try:
                conn.executemany(INSERT_WEBHOOK_REQUEST, rows)
            except sqlite3.IntegrityError as exc:
                raise Conflict("a webhook request id is already in use") from exc
            return sum(len(_apply(conn, inbound).events) for inbound in inbounds)

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
        media_holds: Sequence[MediaHold] = (),
    ) -> IngestOutcome:
        now = encode_time(datetime.now(UTC))
        stamp = now if replayed_at is None else encode_time(replayed_at)
        inbound = Inbound.encode(ROWS, events, transitions, held, now, media_holds)
        params = (WebhookOutcome(outcome).value, reason, stamp, request_id)

        def op(conn: sqlite3.Connection) -> IngestOutcome:
            changed = conn.execute(
                "UPDATE webhook_requests SET outcome = ?, reason = ?, replayed_at = ? WHERE id = ?",
                params,
            ).rowcount
            if changed == 0:
                raise RecordNotFound("webhook request", request_id)
            return _apply(conn, inbound)

        return await self._write(op)

    async def get_webhook_request(self, request_id: str) -> WebhookRequestRecord | None:
        def fn(conn: sqlite3.Connection) -> WebhookRequestRecord | None:
            row = conn.execute(SELECT_WEBHOOK_REQUEST + " WHERE id = ?", (request_id,)).fetchone()
            return None if row is None else _webhook_request(row)

        return await self._read(fn)

    # --- inbound: the event log (read_events: server/store/_keyset_sql.py) ---------------

    async def latest_cursor(self) -> int:
        return await self._read(lambda conn: int(conn.execute(LATEST_CURSOR).fetchone()[0]))

    async def consumer_frontiers(self) -> dict[str, int]:
        def fn(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT name, frontier FROM event_consumers").fetchall()
            return {str(name): int(frontier) for name, frontier in rows}

        return await self._read(fn)

    async def earliest_cursor(self) -> int:
        return await self._read(lambda conn: int(conn.execute(EARLIEST_CURSOR).fetchone()[0]))

    # --- inbound: receipts that overtook their send's reply ---------------------------------

    async def correlate_held(
        self, integration_id: str, provider_message_id: str, message: MessageRecord
    ) -> IngestOutcome:
        stamp = encode_time(datetime.now(UTC))
        metadata = frozen_map(message.metadata)

        def op(conn: sqlite3.Connection) -> IngestOutcome:
            rows = conn.execute(
                f"SELECT {HELD_COLUMN_LIST} FROM held_receipts"  # noqa: S608
                " WHERE integration_id = ? AND provider_message_id = ? ORDER BY held_at, id",
                (integration_id, provider_message_id),
            ).fetchall()
            appended: list[EventRecord] = []
            for row in rows:
                receipt = _held(row)
                event = replace(
                    receipt.event,
                    message_id=message.id,
                    org_id=message.org_id,
                    installation_id=message.installation_id,
                    metadata=metadata,
                )
                cursor = conn.execute(INSERT_EVENT, ROWS.event_params(event)).lastrowid
                assert cursor is not None
                appended.append(EventRecord.appended(event, cursor))
                state = RECEIPT_STATES.get(event.type)
                if state is not None:
                    error = (event.error or None) if state is MessageState.FAILED else None
                    part = part_of(message, provider_message_id)
                    if part is not None:
                        conn.execute(APPLY_PART_TRANSITION, (state.value, message.id, part))
                    conn.execute(APPLY_TRANSITION, (state.value, error, stamp, message.id, part))
                conn.execute("DELETE FROM held_receipts WHERE id = ?", (receipt.id,))
            apply_opt_out_changes(conn, opt_out_changes(appended))
            return IngestOutcome(events=tuple(appended), duplicates=0)

        return await self._write(op)

    async def release_held(self, now: datetime) -> tuple[HeldReceipt, ...]:
        stamp = encode_time(now)

        def op(conn: sqlite3.Connection) -> tuple[HeldReceipt, ...]:
            rows = conn.execute(
                f"DELETE FROM held_receipts WHERE release_at <= ? RETURNING {HELD_COLUMN_LIST}",  # noqa: S608
                (stamp,),
            ).fetchall()
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
        stamp = encode_time(now)
        until = stamp + round(lease_s * 1_000_000)

        def op(conn: sqlite3.Connection) -> tuple[EventRecord, ...]:
            row = conn.execute(
                "SELECT frontier FROM event_consumers WHERE name = ?", (consumer,)
            ).fetchone()
            if row is None:
                frontier = (
                    start_after
                    if start_after is not None
                    else int(conn.execute(LATEST_CURSOR).fetchone()[0])
                )
                conn.execute(
                    "INSERT INTO event_consumers (name, frontier, created_at) VALUES (?, ?, ?)",
                    (consumer, frontier, stamp),
                )
            else:
                frontier = int(row[0])
            leased = [_event(r) for r in conn.execute(EXPIRED_LEASES, (consumer, stamp, limit))]
            rest = limit - len(leased)
            if rest > 0:
                fresh = list(_read_events(conn, frontier, filter, rest))
                if len(fresh) == rest:
                    new_frontier = fresh[-1].cursor
                else:  # everything after the frontier was read: skip what the filter left out
                    new_frontier = max(frontier, int(conn.execute(LATEST_CURSOR).fetchone()[0]))
                if new_frontier != frontier:
                    conn.execute(
                        "UPDATE event_consumers SET frontier = ? WHERE name = ?",
                        (new_frontier, consumer),
                    )
                leased.extend(fresh)
            if leased:
                conn.executemany(
                    PUT_LEASE, [(consumer, e.cursor, subscriber, until) for e in leased]
                )
            return tuple(leased)

        return await self._write(op)

    async def ack_events(self, consumer: str, cursors: Sequence[int]) -> int:
        params = [(consumer, cursor) for cursor in dict.fromkeys(cursors)]
        if not params:
            return 0

        def op(conn: sqlite3.Connection) -> int:
            deleted = conn.executemany(
                "DELETE FROM event_leases WHERE consumer = ? AND cursor = ?", params
            ).rowcount
            return max(deleted, 0)

        return await self._write(op)

    async def release_leases(self, consumer: str, subscriber: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE event_leases SET lease_until = ? WHERE consumer = ? AND subscriber = ?",
                (LONG_AGO, consumer, subscriber),
            )

        await self._write(op)

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
        """Deletes in chunks, each its own short transaction (:class:`PurgeChunks`: about 2 ms
        on the writer thread, at most ``purge_chunk`` rows), so that a large purge never holds
        up the webhooks queued behind it on the writer thread for long."""
        bounds: dict[str, int] = {}
        for kind, before in (
            ("requests", requests_before),
            ("unmatched", unmatched_before),
            ("messages", messages_before),
            ("dedupe_keys", dedupe_before),
        ):
            if before is not None:
                bounds[kind] = encode_time(before)
        counts = dict.fromkeys(
            ("events", "requests", "unmatched", "messages", "dedupe_keys", "leases"), 0
        )
        for kind, bound in bounds.items():
            counts[kind] = await self._delete_in_chunks(PURGE_STATEMENTS[kind], bound)
        if events_before is not None:
            counts["events"], first_kept = await self._purge_events(encode_time(events_before))
            counts["leases"] = await self._write(
                lambda conn: (
                    conn.execute(
                        "DELETE FROM event_leases WHERE cursor < ?", (first_kept,)
                    ).rowcount
                )
            )
        return counts

    async def _purge_events(self, stamp: int) -> tuple[int, int]:
        """Delete the prefix of the log received before ``stamp``, a chunk per transaction;
        how many were deleted and the first cursor kept."""
        bound = 1

        # Pure of the bound it starts from: the writer may run it again after a rollback.
        def op(conn: sqlite3.Connection, bound: int, chunk: int) -> tuple[int, int, bool, float]:
            started = time.perf_counter()
            head = conn.execute(_PURGE_STEP.head, (stamp, chunk)).fetchone()
            bound, done = EventsPurgeStep.next(head, bound)
            deleted = conn.execute(_PURGE_STEP.delete, (bound,)).rowcount
            return deleted, bound, done, time.perf_counter() - started

        async def step(chunk: int) -> tuple[int, float, bool]:
            nonlocal bound
            deleted, bound, done, took = await self._write(
                functools.partial(op, bound=bound, chunk=chunk)
            )
            return deleted, took, done

        total = await purge_paced(step, largest=self._purge_chunk, seconds=PURGE_CHUNK_S)
        return total, bound

    async def _delete_in_chunks(self, statement: str, bound: int) -> int:
        def op(conn: sqlite3.Connection, chunk: int) -> tuple[int, float, bool]:
            started = time.perf_counter()
            deleted = conn.execute(statement, (bound, chunk)).rowcount
            return deleted, time.perf_counter() - started, deleted < chunk

        async def step(chunk: int) -> tuple[int, float, bool]:
            return await self._write(functools.partial(op, chunk=chunk))

        return await purge_paced(step, largest=self._purge_chunk, seconds=PURGE_CHUNK_S)
