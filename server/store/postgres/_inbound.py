"""The PostgreSQL store's inbound path: ingest (batched) and replay, the event log, held
receipts, media holds as ingests write them (docs/media.md), durable consumers and retention
(the methods :class:`~server.store.postgres.PostgresStore` gets from :class:`InboundMethods`)."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

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
    StoreClosed,
    WebhookOutcome,
    WebhookRequestRecord,
)
from .._inbound import Inbound, part_transitions
from .._keyset_sql import EventsPurgeStep
from .._media import MediaHold
from .._opt_outs import opt_out_changes
from .._purge_pace import purge_paced
from .._rows import EVENT_RECEIVED_AT, aware_time, frozen_map
from .._transitions import RECEIPT_STATES, part_of
from ._batcher import IngestBatcher, QueuedIngest
from ._opt_outs import apply_opt_out_changes
from ._pool import PooledConnection, row_count, storable
from ._sql import (
    APPLY_PART_TRANSITION,
    APPLY_TRANSITION,
    CLAIM_KEYS,
    DIALECT,
    EARLIEST_CURSOR,
    EVENT_SELECT,
    EXPIRED_LEASES,
    INSERT_EVENT,
    INSERT_HELD,
    INSERT_MEDIA_HOLD,
    INSERT_WEBHOOK_REQUEST,
    LATEST_CURSOR,
    LOCK_CONSUMER,
    PURGE_STATEMENTS,
    PUT_LEASES,
    ROWS,
    SELECT_WEBHOOK_REQUEST,
    TAKE_CURSORS,
    TAKE_DUE_HELD,
    TAKE_HELD_BY_PROVIDER_ID,
)

__all__ = ["InboundMethods"]

#: What one chunk of a purge should take: each is a statement whose log the next webhook's commit
#: waits to be synced with it (measured: with chunks of 5,000 rows, ingest's p99 at 1,000/s went
#: from 5 to 31 ms while a purge ran).
PURGE_CHUNK_S = 0.005

T = TypeVar("T")

_event = ROWS.event
_held = ROWS.held
_webhook_request = ROWS.webhook_request


_PURGE_STEP = EventsPurgeStep.of(DIALECT)


async def _read_events(
    conn: PooledConnection,
    after_cursor: int,
    up_to: int | None,
    event_filter: EventFilter,
    limit: int,
) -> tuple[EventRecord, ...]:
    statement = keyset_sql.read_events(
        DIALECT,
        EVENT_SELECT,
        after_cursor=after_cursor,
        up_to=up_to,
        event_filter=event_filter,
        limit=limit,
    )
    return tuple(_event(row) for row in await conn.fetch(statement.sql, *statement.params))


async def append_events(
    conn: PooledConnection, events: Sequence[tuple[NewEvent, tuple[Any, ...]]]
) -> list[EventRecord]:
    """Append events (each with its ``ROWS.event_params``) with the next cursors; run it last in the
    transaction (see TAKE_CURSORS)."""
    if not events:
        return []
    last = int(await conn.fetchval(TAKE_CURSORS, len(events)))
    first = last - len(events) + 1
    await conn.executemany(
        INSERT_EVENT, [(first + n, *params) for n, (_, params) in enumerate(events)]
    )
    return [EventRecord.appended(event, first + n) for n, (event, _) in enumerate(events)]


async def apply_inbound(conn: PooledConnection, inbounds: Sequence[Inbound]) -> list[IngestOutcome]:
    """Inside the caller's transaction, for one call or a batch of them, in order: dedupe,
    transitions, held receipts, media holds (docs/media.md), the opt-outs the events to append
    record or clear (docs/delivery.md, "Opt-outs"), then the append (see TAKE_CURSORS). One
    statement per step whatever the number of calls."""
    # 1. Claim every dedupe key at once. Per call, its events, then its held receipts, then its
    #    media holds (the order SQLite claims them in), the first with a key claimed now is
    #    kept; any other with that key is a duplicate.
    times: dict[str, datetime] = {}
    for inbound in inbounds:
        for event, params in inbound.events:
            if event.dedupe_key is not None:
                times.setdefault(event.dedupe_key, params[EVENT_RECEIVED_AT])
        pending = [(r.event, t) for r, _, t in inbound.held]
        pending += [(h.event, t) for h, _, t in inbound.media_holds]
        for held_event, key_time in pending:
            if held_event.dedupe_key is not None:
                times.setdefault(held_event.dedupe_key, key_time)
    claimed: set[object] = set()
    if times:
        rows = await conn.fetch(CLAIM_KEYS, list(times), list(times.values()))
        claimed = {row[0] for row in rows}

    def first_claim(key: str | None) -> bool:
        if key is None:
            return True
        stored = storable(key)  # as PostgreSQL returned it
        if stored in claimed:
            claimed.discard(stored)
            return True
        return False

    appending: list[list[tuple[NewEvent, tuple[Any, ...]]]] = []
    holding: list[tuple[Any, ...]] = []
    media_holding: list[tuple[Any, ...]] = []
    duplicates: list[int] = []
    for inbound in inbounds:
        kept = [item for item in inbound.events if first_claim(item[0].dedupe_key)]
        held = [
            params for receipt, params, _ in inbound.held if first_claim(receipt.event.dedupe_key)
        ]
        waiting = [
            params for hold, params, _ in inbound.media_holds if first_claim(hold.event.dedupe_key)
        ]
        appending.append(kept)
        holding.extend(held)
        media_holding.extend(waiting)
        given = len(inbound.events) + len(inbound.held) + len(inbound.media_holds)
        duplicates.append(given - len(kept) - len(held) - len(waiting))
    # 2. Transitions, in the given order (one statement each: a later one sees an earlier one).
    transitions = [params for inbound in inbounds for params in inbound.transitions]
    if transitions:
        parts = part_transitions(transitions)
        if parts:
            await conn.executemany(APPLY_PART_TRANSITION, parts)
        await conn.executemany(APPLY_TRANSITION, transitions)
    # 3. Held receipts.
    if holding:
        try:
            await conn.executemany(INSERT_HELD, holding)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("a held receipt's id is already in use") from exc
    # 3b. Media holds: their events are appended when they are released (docs/media.md).
    if media_holding:
        try:
            await conn.executemany(INSERT_MEDIA_HOLD, media_holding)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("a media hold's id is already in use") from exc
    # 4. Opt-outs, of the events about to be appended, in their order.
    to_append = [item for kept in appending for item in kept]
    await apply_opt_out_changes(conn, opt_out_changes(event for event, _ in to_append))
    # 5. The events, last: their cursors lock the counter until the commit.
    appended = iter(await append_events(conn, to_append))
    return [
        IngestOutcome(events=tuple(itertools.islice(appended, len(kept))), duplicates=dups)
        for kept, dups in zip(appending, duplicates, strict=True)
    ]


class InboundMethods:
    """The inbound half of the PostgreSQL store; it runs on the store's ``_read``/``_write``/
    ``_statement`` and hands concurrent ingests to ``_ingests``."""

    _purge_chunk: int
    _closing: bool
    _pool: Any
    _ingests: IngestBatcher

    async def _read(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _statement(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _write(self, fn: Callable[[PooledConnection], Awaitable[T]]) -> T:
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
        inbound = Inbound.encode(ROWS, events, transitions, held, datetime.now(UTC), media_holds)
        if self._pool is None or self._closing:
            raise StoreClosed("the store is not open")
        return await self._ingests.submit(request_params, inbound)

    async def _ingest_one(self, item: QueuedIngest) -> IngestOutcome:
        async def op(conn: PooledConnection) -> IngestOutcome:
            try:
                await conn.execute(INSERT_WEBHOOK_REQUEST, *item.request_params)
            except asyncpg.UniqueViolationError as exc:
                request_id = item.request_params[0]
                raise Conflict(f"webhook request {request_id!r} already exists") from exc
            (outcome,) = await apply_inbound(conn, [item.inbound])
            return outcome

        return await self._write(op)

    async def _ingest_batch(self, batch: Sequence[QueuedIngest]) -> list[IngestOutcome]:
        async def op(conn: PooledConnection) -> list[IngestOutcome]:
            try:
                await conn.executemany(
                    INSERT_WEBHOOK_REQUEST, [item.request_params for item in batch]
                )
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("a webhook request id is already in use") from exc
            return await apply_inbound(conn, [item.inbound for item in batch])

        return await self._write(op)

    async def ingest_many(
        self, requests: Sequence[tuple[WebhookRequestRecord, Sequence[NewEvent]]]
    ) -> int:
        now = datetime.now(UTC)
        rows = [ROWS.request_params(request) for request, _ in requests]
        inbounds = [Inbound.encode(ROWS, events, (), (), now) for _, events in requests]

        async def op(conn: PooledConnection) -> int:
            try:
                await conn.executemany(INSERT_WEBHOOK_REQUEST, rows)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("a webhook request id is already in use") from exc
            return sum(len(outcome.events) for outcome in await apply_inbound(conn, inbounds))

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
        now = datetime.now(UTC)
        when = now if replayed_at is None else aware_time(replayed_at)
        inbound = Inbound.encode(ROWS, events, transitions, held, now, media_holds)
        outcome_value = WebhookOutcome(outcome).value

        async def op(conn: PooledConnection) -> IngestOutcome:
            status = await conn.execute(
                "UPDATE webhook_requests SET outcome = $1, reason = $2, replayed_at = $3"
                " WHERE id = $4",
                outcome_value,
                reason,
                when,
                request_id,
            )
            if row_count(status) == 0:
                raise RecordNotFound("webhook request", request_id)
            (applied,) = await apply_inbound(conn, [inbound])
            return applied

        return await self._write(op)

    async def get_webhook_request(self, request_id: str) -> WebhookRequestRecord | None:
        async def fn(conn: PooledConnection) -> WebhookRequestRecord | None:
            row = await conn.fetchrow(
                SELECT_WEBHOOK_REQUEST + " WHERE id = $1",
                request_id,
            )
            return None if row is None else _webhook_request(row)

        return await self._read(fn)

    # --- inbound: the event log (read_events: server/store/_keyset_sql.py) ---------------

    async def latest_cursor(self) -> int:
        async def fn(conn: PooledConnection) -> int:
            return int(await conn.fetchval(LATEST_CURSOR))

        return await self._read(fn)

    async def consumer_frontiers(self) -> dict[str, int]:
        async def fn(conn: PooledConnection) -> dict[str, int]:
            rows = await conn.fetch("SELECT name, frontier FROM event_consumers")
            return {str(row["name"]): int(row["frontier"]) for row in rows}

        return await self._read(fn)

    async def earliest_cursor(self) -> int:
        async def fn(conn: PooledConnection) -> int:
            return int(await conn.fetchval(EARLIEST_CURSOR))

        return await self._read(fn)

    # --- inbound: receipts that overtook their send's reply ---------------------------------

    async def correlate_held(
        self, integration_id: str, provider_message_id: str, message: MessageRecord
    ) -> IngestOutcome:
        stamp = datetime.now(UTC)
        metadata = frozen_map(message.metadata)

        async def op(conn: PooledConnection) -> IngestOutcome:
            rows = await conn.fetch(
                TAKE_HELD_BY_PROVIDER_ID,
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
                events.append((event, ROWS.event_params(event)))
                state = RECEIPT_STATES.get(event.type)
                if state is not None:
                    error = (event.error or None) if state is MessageState.FAILED else None
                    part = part_of(message, provider_message_id)
                    transitions.append((state.value, error, stamp, message.id, part))
            if transitions:
                parts = part_transitions(transitions)
                if parts:
                    await conn.executemany(APPLY_PART_TRANSITION, parts)
                await conn.executemany(APPLY_TRANSITION, transitions)
            await apply_opt_out_changes(conn, opt_out_changes(event for event, _ in events))
            appended = await append_events(conn, events)
            return IngestOutcome(events=tuple(appended), duplicates=0)

        return await self._write(op)

    async def release_held(self, now: datetime) -> tuple[HeldReceipt, ...]:
        when = aware_time(now)

        async def op(conn: PooledConnection) -> tuple[HeldReceipt, ...]:
            rows = await conn.fetch(TAKE_DUE_HELD, when)
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
        when = aware_time(now)
        until = when + timedelta(seconds=lease_s)

        async def op(conn: PooledConnection) -> tuple[EventRecord, ...]:
            frontier = int(await conn.fetchval(LOCK_CONSUMER, consumer, start_after, when))
            leased = [
                _event(row) for row in await conn.fetch(EXPIRED_LEASES, consumer, when, limit)
            ]
            rest = limit - len(leased)
            if rest > 0:
                # The latest cursor first: every event up to it is committed, so the read that
                # follows sees all of them, and the frontier may move past the ones it skips.
                latest = int(await conn.fetchval(LATEST_CURSOR))
                fresh: list[EventRecord] = []
                if latest > frontier:
                    fresh = list(await _read_events(conn, frontier, latest, filter, rest))
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
                await conn.execute(PUT_LEASES, consumer, subscriber, until, cursors)
            return tuple(leased)

        return await self._write(op)

    async def ack_events(self, consumer: str, cursors: Sequence[int]) -> int:
        wanted = list(dict.fromkeys(cursors))
        if not wanted:
            return 0

        async def op(conn: PooledConnection) -> int:
            status = await conn.execute(
                "DELETE FROM event_leases WHERE consumer = $1 AND cursor = ANY ($2::bigint[])",
                consumer,
                wanted,
            )
            return row_count(status)

        return await self._statement(op)

    async def release_leases(self, consumer: str, subscriber: str) -> None:
        async def op(conn: PooledConnection) -> None:
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
        for kind, before in (
            ("requests", requests_before),
            ("unmatched", unmatched_before),
            ("messages", messages_before),
            ("dedupe_keys", dedupe_before),
        ):
            if before is not None:
                bounds[kind] = aware_time(before)
        counts = dict.fromkeys(
            ("events", "requests", "unmatched", "messages", "dedupe_keys", "leases"), 0
        )
        for kind, limit in bounds.items():
            counts[kind] = await self._delete_in_chunks(PURGE_STATEMENTS[kind], limit)
        if events_before is not None:
            counts["events"], first_kept = await self._purge_events(aware_time(events_before))

            async def drop_leases(conn: PooledConnection) -> int:
                return row_count(
                    await conn.execute("DELETE FROM event_leases WHERE cursor < $1", first_kept)
                )

            counts["leases"] = await self._statement(drop_leases)
        return counts

    async def _purge_events(self, stamp: datetime) -> tuple[int, int]:
        """Delete the prefix of the log received before ``stamp``, a chunk per transaction;
        how many were deleted and the first cursor kept."""
        bound = 1

        # Pure of the bound it starts from: a transaction that meets a conflict runs again.
        async def op(
            conn: PooledConnection, bound: int, chunk: int
        ) -> tuple[int, int, bool, float]:
            started = time.perf_counter()
            head = await conn.fetchrow(_PURGE_STEP.head, stamp, chunk)
            assert head is not None  # one row, always
            bound, done = EventsPurgeStep.next(tuple(head), bound)
            deleted = row_count(await conn.execute(_PURGE_STEP.delete, bound))
            return deleted, bound, done, time.perf_counter() - started

        async def step(chunk: int) -> tuple[int, float, bool]:
            nonlocal bound
            deleted, bound, done, took = await self._write(
                functools.partial(op, bound=bound, chunk=chunk)
            )
            return deleted, took, done

        total = await purge_paced(step, largest=self._purge_chunk, seconds=PURGE_CHUNK_S)
        return total, bound

    async def _delete_in_chunks(self, statement: str, bound: object) -> int:
        async def op(conn: PooledConnection, chunk: int) -> tuple[int, float, bool]:
            started = time.perf_counter()
            deleted = row_count(await conn.execute(statement, bound, chunk))
            return deleted, time.perf_counter() - started, deleted < chunk

        async def step(chunk: int) -> tuple[int, float, bool]:
            return await self._statement(functools.partial(op, chunk=chunk))

        return await purge_paced(step, largest=self._purge_chunk, seconds=PURGE_CHUNK_S)
