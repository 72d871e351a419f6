"""Held receipts: receipts that arrived before their send recorded the provider message id.

The ingest path stores them held (docs/format.md, "Receipts": held receipts). They are completed
when a send of this process records that id (:meth:`HeldReceipts.on_message_sent`), or released
by a background loop once ``receipt_wait`` has passed: correlated if their message appeared
meanwhile (a send on another replica), else produced without our message id or kept unroutable.
(ext) A receipt that named our id of a message still pending is held the same way, under
:func:`our_id_key`, and completed when that send records its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ...store import (
    HeldReceipt,
    IngestOutcome,
    MessageRecord,
    MessageTransition,
    NewEvent,
    Store,
    WebhookOutcome,
)
from .._events import EventHub
from ._transitions import transition_for

__all__ = ["HeldReceipts", "is_our_id_key", "our_id_key"]

# (ext) A receipt that names our id of a message still pending (its send's answer not recorded
# yet) is held under this key rather than a provider id (docs/format.md, "Receipts": by our id).
# The ingest path never holds a provider id that starts with it, so a provider cannot forge one.
_OUR_ID_KEY = "msgbridge-our-id:"


def our_id_key(message_id: str) -> str:
    """The held-receipt key of a receipt that names our id ``message_id``."""
    return _OUR_ID_KEY + message_id


def is_our_id_key(key: str) -> bool:
    return key.startswith(_OUR_ID_KEY)


logger = logging.getLogger(__name__)


class HeldReceipts:
    """Completes and releases held receipts; :meth:`start` runs the release loop every
    ``interval_s`` seconds, :meth:`aclose` stops it."""

    def __init__(
        self, *, store: Store, hub: EventHub, receipt_wait_s: float, interval_s: float = 1.0
    ) -> None:
        self._store = store
        self._hub = hub
        self._wait = timedelta(seconds=receipt_wait_s)
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        # (integration, provider message id) of the receipts this process has held.
        self._held_here: set[tuple[str, str]] = set()

    @property
    def wait(self) -> timedelta:
        """How long a receipt is held before it is released."""
        return self._wait

    def remember(self, held: Sequence[HeldReceipt]) -> None:
        """The ingest path has stored ``held``: a send of this process may complete them."""
        self._held_here.update((h.integration_id, h.provider_message_id) for h in held)

    async def on_message_sent(self, message: MessageRecord) -> None:
        """A send recorded its provider id: complete the receipts held for it.

        Only receipts this process holds are looked for here, which spares the store a write per
        send; one held by another replica is correlated when it is released (which looks the
        message up again), at most ``receipt_wait`` later.
        """
        produced = 0
        # Every part's provider id (docs/format.md, "Several requests per send"), and our id.
        for held_key in (*message.provider_ids, our_id_key(message.id)):
            key = (message.integration_id, held_key)
            if not held_key or key not in self._held_here:
                continue
            self._held_here.discard(key)
            outcome = await self._store.correlate_held(message.integration_id, held_key, message)
            produced += len(outcome.events)
        if produced:
            self._hub.notify()

    async def release_due(self) -> int:
        """Receipts held past ``receipt_wait``: correlate them if their message appeared
        meanwhile, else produce them without our message id (token URL) or keep them as
        unroutable (per-integration URL). Returns the number of events produced."""
        released = await self._store.release_held(datetime.now(UTC))
        produced = 0
        for held in released:
            self._held_here.discard((held.integration_id, held.provider_message_id))
            event = held.event
            message = await self._message_of(held)
            if message is not None:
                correlated = replace(
                    event,
                    message_id=message.id,
                    org_id=message.org_id,
                    installation_id=message.installation_id,
                    metadata=dict(message.metadata),
                )
                transition = transition_for(
                    event.type, message, event.error, held.provider_message_id
                )
                outcome = await self._append(
                    held, [correlated], [transition] if transition is not None else []
                )
            elif event.installation_id:
                outcome = await self._append(held, [event], [])
            else:
                await self._store.mark_replayed(
                    event.request_id,
                    outcome=WebhookOutcome.UNROUTABLE,
                    reason=(
                        f"a {event.type} receipt for provider message "
                        f"{held.provider_message_id!r} matched no message sent through the gateway"
                    ),
                    events=(),
                )
                continue
            produced += len(outcome.events)
        if produced:
            self._hub.notify()
        return produced

    async def _message_of(self, held: HeldReceipt) -> MessageRecord | None:
        if not is_our_id_key(held.provider_message_id):
            return await self._store.find_message_by_provider_id(
                held.integration_id, held.provider_message_id
            )
        # Held by our id: the message was found in scope when it was held; it is looked up again
        # with the same scope (its integration, and the installation whose URL it came through).
        message = await self._store.get_message(held.provider_message_id[len(_OUR_ID_KEY) :])
        if message is None or message.integration_id != held.integration_id:
            return None
        installation = held.event.installation_id
        return message if not installation or message.installation_id == installation else None

    async def _append(
        self,
        held: HeldReceipt,
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition],
    ) -> IngestOutcome:
        request = await self._store.get_webhook_request(held.event.request_id)
        assert request is not None
        # Released events carry no dedupe key: the dedupe key was taken when they were held.
        plain = [replace(e, dedupe_key=None) for e in events]
        return await self._store.mark_replayed(
            request.id,
            outcome=request.outcome,
            reason=request.reason,
            events=plain,
            transitions=transitions,
        )

    async def start(self) -> None:
        """Release due receipts in the background, every ``interval_s`` seconds."""
        if self._task is not None:
            raise RuntimeError("HeldReceipts already started")

        async def loop() -> None:
            while True:
                try:
                    await self.release_due()
                except Exception:
                    logger.exception("releasing held receipts failed")
                await asyncio.sleep(self._interval_s)

        self._task = asyncio.create_task(loop(), name="msgbridge-held-receipts")

    async def aclose(self) -> None:
        """Stop the release loop (idempotent); what is still held is released by the next run
        (or another replica)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
