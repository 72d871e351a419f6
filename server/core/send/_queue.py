"""The delivery queue of one process (docs/delivery.md): it claims due messages from the store
and delivers them, serving installations in turn, within the rates the store keeps, at most
``concurrency`` at once; and it ends the sends of processes that stopped mid-call.

    loop: due messages (store; the head of each conversation, a few per installation)
          → installations in turn: claim (store: rate slots, the lease) → deliver (a task)
          → sleep until the earliest of: a rate's next slot, the next due message, a wake-up
            (a new message, a finished one), ``poll_s`` (other replicas' messages)

A rate refusal is remembered until the slot it names, so that the loop does not ask the store
again before then; the store's answer is the one that counts (it holds across replicas).

A slot is claimed ahead, for its instant: up to ``_LEAD_S`` before a remembered slot the loop
claims the message with ``now`` = the slot's time, and its delivery waits for that instant. A
slot taken late is lost (the rate's next slot counts from when it was taken; with a burst of 1
nothing makes up for it: docs/delivery.md, "Limits"), and the loop is always a little late — a
store read, a busy event loop, other replicas' claims. Claiming ahead keeps the rate exact over
time; the loop's lateness only shifts a message within its slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from ...store import MessageRecord, MessageState, RateSlot, Store
from ...tracing import traced
from ._deliver import Resolved

__all__ = ["DeliveryQueue"]

logger = logging.getLogger(__name__)

#: Delivers a message leased to this process; True when it ended there (sent, failed for good,
#: its lease taken over), False when it is queued again (a retry): the queue then reads again.
Deliver = Callable[[MessageRecord, Resolved | None], Awaitable[bool]]
RatesOf = Callable[[MessageRecord], Awaitable[tuple[RateSlot, ...]]]

# Fewest seconds between two reads of the due messages while the queue is busy.
_MIN_READ_INTERVAL_S = 0.05

# How long before a rate's slot the loop claims a message for it: a read that comes this late
# (a slow store, a busy machine) still finds the slot ahead of it. A message claimed ahead is
# ``sending`` for that long before it leaves (it cannot be cancelled then).
_LEAD_S = 0.25
_LEAD = timedelta(seconds=_LEAD_S)


class DeliveryQueue:
    """Claims and delivers queued messages; :meth:`begin` delivers one claimed elsewhere."""

    def __init__(
        self,
        *,
        store: Store,
        deliver: Deliver,
        abandon: Callable[[MessageRecord], Awaitable[None]],
        rates_of: RatesOf,
        owner: str,
        lease_s: float,
        concurrency: int = 256,
        batch: int = 200,
        poll_s: float = 1.0,
    ) -> None:
        self._store = store
        self._deliver = deliver
        self._abandon = abandon
        self._rates_of = rates_of
        self.owner = owner
        self.lease_s = lease_s
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._batch = batch
        self._poll_s = poll_s
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # True while the last read found nothing queued: a delivery that ends then cannot have
        # made another message due (a message queued since woke the loop itself).
        self._nothing_queued = False
        self._blocked: dict[str, datetime] = {}  # rate key → its next slot (the store's clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="msgbridge-delivery-queue"),
            asyncio.create_task(self._lease_loop(), name="msgbridge-expired-leases"),
        ]

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Stop claiming; give the deliveries in flight ``grace_s`` to end, then cancel them
        (their messages stay ``sending`` until their lease ends: another process, or this one
        restarted, ends them as OUTCOME_UNKNOWN)."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        running = list(self._running.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # --- what the send path asks ----------------------------------------------------------------

    def lease_until(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.lease_s)

    def wake(self) -> None:
        """Something may be due: read the queue again soon."""
        self._nothing_queued = False
        self._wake.set()

    def begin(
        self,
        message: MessageRecord,
        resolved: Resolved | None = None,
        *,
        at: datetime | None = None,
    ) -> None:
        """Deliver a message leased to this process (claimed when it was recorded, or by the
        loop for a rate slot at ``at``: not before then)."""
        task = asyncio.create_task(self._run(message, resolved, at))
        self._running[message.id] = task

    async def _run(
        self,
        message: MessageRecord,
        resolved: Resolved | None,
        at: datetime | None = None,
    ) -> None:
        ended = False
        try:
            if at is not None and (wait := (at - datetime.now(UTC)).total_seconds()) > 0:
                try:
                    await asyncio.sleep(wait)
                except asyncio.CancelledError:
                    # Stopped before its slot: nothing was sent, so it is queued again rather
                    # than left ``sending`` to end as OUTCOME_UNKNOWN when its lease runs out.
                    await asyncio.shield(self._release(message, at))
                    raise
            ended = await traced(
                "deliver", self._deliver(message, resolved), {"msgbridge.message_id": message.id}
            )
        except Exception:
            logger.exception("a delivery failed unexpectedly", extra={"message_id": message.id})
        finally:
            self._running.pop(message.id, None)
            # A conversation's next message may leave now, or this one again later; unless
            # this one ended and nothing else was queued when the queue was read last.
            if not (ended and self._nothing_queued):
                self._wake.set()

    async def _release(self, message: MessageRecord, at: datetime) -> None:
        try:
            await self._store.finish_attempt(
                message,
                owner=self.owner,
                state=MessageState.QUEUED,
                attempt=None,
                attempts=message.attempts,
                next_attempt_at=at,
                now=datetime.now(UTC),
            )
        except Exception:
            logger.exception(
                "a claimed message could not be queued again", extra={"message_id": message.id}
            )

    # --- the loops ------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        last_read = 0.0
        while not self._closing:
            try:
                since = time.monotonic() - last_read
                if since < _MIN_READ_INTERVAL_S:
                    await asyncio.sleep(_MIN_READ_INTERVAL_S - since)
                self._wake.clear()
                last_read = time.monotonic()
                sleep_s = await self._claim_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the delivery queue could not read the store")
                self._nothing_queued = False
                sleep_s = self._poll_s
            if sleep_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=sleep_s)

    async def _claim_due(self) -> float:
        """Claim what is due and can leave by ``_LEAD_S`` from now, the message that can leave
        first first (a message whose own number waits must not take a slot of the installation's
        that another could have had); the seconds until something may be due next."""
        now = datetime.now(UTC)
        due = await self._store.due_messages(now, limit=self._batch)
        if due:
            self._nothing_queued = False
        free = self._concurrency - len(self._running)
        now = datetime.now(UTC)
        self._blocked = {k: t for k, t in self._blocked.items() if t > now}
        # The messages by the earliest they may leave (from this read on: ``start``),
        # installations in turn among equals (_in_turn). A key's known slot only moves later, so
        # an entry's instant is a lower bound: one still right when it comes up is the earliest.
        start = now
        waiting: list[tuple[datetime, int, MessageRecord, tuple[RateSlot, ...]]] = []
        known_rates: dict[tuple[str, str, int], tuple[RateSlot, ...]] = {}  # for this read
        for turn, message in enumerate(_in_turn(due)):
            if message.id not in self._running:
                sender = (message.installation_id, message.from_number, message.segments)
                rates = known_rates.get(sender)
                if rates is None:
                    rates = known_rates[sender] = await self._rates_of(message)
                waiting.append((self._slot_at(rates, start), turn, message, rates))
        heapq.heapify(waiting)
        soonest: datetime | None = None  # the earliest slot of a message left waiting
        while waiting:
            if free <= 0:
                return self._poll_s
            known, turn, message, rates = waiting[0]
            at = self._slot_at(rates, start)
            if at > known:
                heapq.heapreplace(waiting, (at, turn, message, rates))
                continue
            if at > datetime.now(UTC) + _LEAD:
                soonest = at
                break
            heapq.heappop(waiting)
            later = await self._claim(message, rates)
            if later is None:
                free -= 1
            elif later is not _NOT_CLAIMABLE:  # refused: it comes up again at its later slot
                heapq.heappush(waiting, (self._slot_at(rates, start), turn, message, rates))
        now = datetime.now(UTC)
        waits = [] if soonest is None else [(soonest - now - _LEAD).total_seconds()]
        next_due = await self._store.next_due_at()
        self._nothing_queued = not due and next_due is None
        if next_due is not None:
            waits.append((next_due - now).total_seconds())
        waits = [max(w, 0.001) for w in waits]
        if len(due) >= self._batch:
            waits.append(_MIN_READ_INTERVAL_S)  # more may be due than one read returned
        return min([self._poll_s, *waits])

    def _slot_at(self, rates: tuple[RateSlot, ...], now: datetime) -> datetime:
        """The earliest a message under ``rates`` may leave, as far as this process knows."""
        return max([now, *(self._blocked.get(slot.key, now) for slot in rates)])

    async def _claim(self, message: MessageRecord, rates: tuple[RateSlot, ...]) -> datetime | None:
        """Claim ``message`` for the earliest slot its rates may have, as far as this process
        knows, and begin its delivery (None); else when it may leave (a rate refused it: the slot
        it names), or ``_NOT_CLAIMABLE``."""
        at = self._slot_at(rates, datetime.now(UTC))
        claim = await self._store.claim_queued(
            message.id,
            owner=self.owner,
            lease_until=self.lease_until(),
            rates=rates,
            now=at,
        )
        if claim.message is not None:
            self.begin(claim.message, at=at if at > datetime.now(UTC) else None)
            for slot in rates:
                # The key's next slot is at least this far on (RateSlot: its tat moved to at
                # least at + cost * interval; a next message costs at least 1): a hint.
                ahead = (slot.cost + 1.0 - slot.burst) * slot.interval_s
                if ahead > 0:
                    self._note(slot.key, at + timedelta(seconds=ahead))
            return None
        if claim.retry_in_s is None or claim.key is None:
            return _NOT_CLAIMABLE
        # Rounded up to the store's microseconds: a refusal by a rounding error (the slot's time
        # computed in float seconds) must name a later instant, not the same one.
        retry_us = max(1, math.ceil(claim.retry_in_s * 1_000_000))
        self._note(claim.key, at + timedelta(microseconds=retry_us))
        return self._slot_at(rates, datetime.now(UTC))

    def _note(self, key: str, slot_at: datetime) -> None:
        """Remember that ``key`` has no slot before ``slot_at``."""
        known = self._blocked.get(key)
        if known is None or slot_at > known:
            self._blocked[key] = slot_at

    async def _lease_loop(self) -> None:
        """End the sends of processes that stopped while calling the provider."""
        interval = max(1.0, min(self.lease_s / 4, 15.0))
        while not self._closing:
            try:
                expired = await self._store.expired_leases(datetime.now(UTC), limit=100)
                for message in expired:
                    if message.id not in self._running:
                        await self._abandon(message)
                if expired:
                    self._wake.set()  # a message queued again may be due
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the delivery queue could not end expired sends")
            await asyncio.sleep(interval)


#: :meth:`DeliveryQueue._claim`: the message can no longer be claimed (sent, cancelled, claimed
#: elsewhere, or an earlier message of its conversation waits).
_NOT_CLAIMABLE: Final = datetime.min.replace(tzinfo=UTC)


def _in_turn(due: tuple[MessageRecord, ...]) -> list[MessageRecord]:
    """The due messages with installations served in turn: the first of each installation, then
    the second of each, …, each installation's in their order (oldest first)."""
    by_installation: dict[str, list[MessageRecord]] = {}
    for message in due:
        by_installation.setdefault(message.installation_id, []).append(message)
    turns: list[MessageRecord] = []
    depth = 0
    lists = list(by_installation.values())
    while lists:
        lists = [items for items in lists if len(items) > depth]
        turns.extend(items[depth] for items in lists)
        depth += 1
    return turns
