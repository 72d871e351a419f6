"""The send path: SendMessage and SendFile, from request to reply (docs/delivery.md).

    validate → resolve the installation (org + from) → encoding and segments, limits
    → record the message in the queue (one store write: opt-outs, queue cap, idempotency key;
      claimed at once when nothing makes it wait — its conversation, its rates, its send time)
    → deliver it (core/send/_deliver.py), or let the queue (core/send/_queue.py) do so in turn
    → reply: when the provider has answered; QUEUED (or SENDING) at once in QUEUE mode, for a
      scheduled send, or when the caller's deadline nears first — the outcome then follows as
      an event

Idempotency: a key is claimed atomically with the message (unique per organisation). A repeat
waits for the first call's message like the first call does, or gets its stored reply (or
error) without calling the provider. A failure that left nothing sent (no connection, 429, 5xx)
releases the key: a repeat queues the message again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ...engine import segment_count, text_encoding
from ...errors import (
    FailedPrecondition,
    GatewayError,
    InvalidRequest,
    NotFound,
    ResourceExhausted,
)
from ...metrics import NO_METRICS, Metrics
from ...outbound import OutboundClient
from ...store import (
    InstallationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    OptedOut,
    QueueFull,
    RateSlot,
    Store,
)
from ...tracing import traced
from .._capped_cache import CappedCache
from .._catalog import IntegrationCatalog, LoadedIntegration
from .._events import EventHub
from .._exchange_log import ExchangeLog
from .._ids import new_id
from .._installations import InstallationDirectory
from .._numbers import normalize_number
from .._provider_credentials import InstallationAuth
from .._send_limits import SendLimits, effective_limits, limits_from_json, rate_slots
from ._attempt import ProviderAttempt
from ._deliver import (
    Deliverer,
    Outcome,
    Outcomes,
    Requeued,
    chosen,
    opt_out_address,
    opted_out,
    outcome_of_final,
    resolve_sender,
    template_for,
)
from ._queue import DeliveryQueue
from ._request import (
    SendOutcome,
    SendRequest,
    key_reused,
    outcome_of,
    request_json,
    stored_reply,
    validate,
)
from ._retry import RetryPolicy
from ._signals import ConversationSignals

__all__ = ["Delivery", "MessageRates", "SendPath", "build_delivery"]

logger = logging.getLogger(__name__)

#: How often a caller waiting for a message delivered by another process looks at it.
_LOOK_AGAIN_S = 0.5


class SendPath:
    """Sends messages and files: one :meth:`send` per SendMessage or SendFile call."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        queue: DeliveryQueue,
        outcomes: Outcomes,
        max_queued: int,
        reply_margin_s: float = 0.25,
        limits_of: Callable[[InstallationRecord, LoadedIntegration], SendLimits] | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._installations = installations
        self._queue = queue
        self._outcomes = outcomes
        self._max_queued = max_queued
        self._reply_margin_s = reply_margin_s
        self._limits_of = limits_of or installation_limits

    async def send(self, request: SendRequest, *, deadline: float) -> SendOutcome:
        """Send, or return the stored outcome of the same idempotency key.

        ``deadline`` is a ``time.monotonic()`` instant; a message still waiting when it nears is
        replied QUEUED or SENDING (docs/delivery.md, "Replies").
        """
        now = datetime.now(UTC)
        validate(request, now)
        installation, integration = await self._resolve(request)
        template_for(request.kind, integration)  # FAILED_PRECONDITION when it cannot send files
        limits = self._limits_of(installation, integration)
        waits = request.queue or (request.send_at is not None and request.send_at > now)
        # A caller replied before the outcome is known has it published as an event.
        # Built as it is recorded when it may leave at once (the store keeps it queued if not).
        lease = None if waits else (self._queue.owner, self._queue.lease_until())
        record = _new_message(request, installation, integration, now, notify=waits, lease=lease)
        if limits.max_segments and record.segments > limits.max_segments:
            raise InvalidRequest(
                f"the text takes {record.segments} SMS segments; this installation sends at most "
                f"{limits.max_segments}",
                reason="TOO_MANY_SEGMENTS",
                violations=[("text", f"at most {limits.max_segments} segments")],
            )
        claim = None
        if lease is not None:
            claim = (*lease, message_slots(limits, installation, record))
        try:
            enqueueing = self._store.enqueue_message(
                record,
                claim=claim,
                now=now,
                max_queued=limits.max_queued or self._max_queued,
                opt_out=opt_out_address(record, installation, integration.definition.addresses),
            )
            stored, created = await traced("store.enqueue", enqueueing)
        except OptedOut:
            raise opted_out(installation.id, record.from_number) from None
        except QueueFull as full:
            raise ResourceExhausted(
                f"the installation has {full.limit} messages waiting; retry later",
                reason="QUEUE_FULL",
                metadata={"installation": installation.id},
                retry_after_s=1.0,
            ) from None
        if not created:
            return await self._repeat(stored, request, deadline, waits=waits)
        future = None if waits else self._outcomes.future(stored.id)
        if stored.state is MessageState.SENDING:
            self._queue.begin(stored, (installation, integration, request))
        else:
            self._queue.wake()
        if future is None:
            return outcome_of(stored)
        return await self._await(stored, future, deadline)

    async def _repeat(
        self, stored: MessageRecord, request: SendRequest, deadline: float, *, waits: bool
    ) -> SendOutcome:
        """A call with a key already used: the first call's reply, or wait with it — unless
        the call is one replied at once (``waits``: QUEUE mode, or a send time still ahead),
        as the first call was."""
        if stored.request_fingerprint != request.fingerprint():
            raise key_reused()
        if stored.reply_json is not None:
            reply = stored_reply(stored.reply_json)
            if isinstance(reply, GatewayError):
                raise reply
            return reply
        if stored.state is MessageState.FAILED:  # a failure that sent nothing released the key
            requeued = await self._store.requeue_message(stored.id, now=datetime.now(UTC))
            if requeued is not None:
                stored = requeued
                self._queue.wake()
        if stored.state is MessageState.CANCELLED:
            raise FailedPrecondition("the message was cancelled", reason="MESSAGE_CANCELLED")
        if stored.state not in (MessageState.QUEUED, MessageState.SENDING):
            final = outcome_of_final(stored)
            if isinstance(final, GatewayError):
                raise final
            return replace(outcome_of(stored), replayed=True)
        if waits:
            return replace(outcome_of(stored), replayed=True)
        outcome = await self._await(stored, self._outcomes.future(stored.id), deadline)
        return replace(outcome, replayed=True)

    async def _await(
        self, stored: MessageRecord, future: asyncio.Future[Outcome], deadline: float
    ) -> SendOutcome:
        """Wait for the message's outcome until the caller's deadline nears — or until it is
        queued again for a retry after that — then reply it as it stands and have its outcome
        published as an event."""
        budget = deadline - time.monotonic()
        reply_at = deadline - min(self._reply_margin_s, max(budget, 0.0) / 10)
        if stored.state is MessageState.QUEUED and stored.next_attempt_at is not None:
            # Already waiting for a retry (a repeat of its key): reply now if that comes later.
            future.set_result(Requeued(stored.next_attempt_at))
        try:
            while (left := reply_at - time.monotonic()) > 0:
                outcome_or_none = await _within(future, min(left, _LOOK_AGAIN_S))
                if outcome_or_none is None:
                    # Delivered by another process? Its record says so.
                    self._outcomes.forget(stored.id, future)
                    future = self._outcomes.future(stored.id)
                    current = await self._store.get_message(stored.id)
                    final = None if current is None else outcome_of_final(current)
                    if final is None:
                        continue
                    outcome_or_none = final
                outcome = outcome_or_none
                if isinstance(outcome, Requeued):
                    retry_in = (outcome.retry_at - datetime.now(UTC)).total_seconds()
                    if time.monotonic() + retry_in >= reply_at:
                        break  # its next attempt comes after the reply is due
                    future = self._outcomes.future(stored.id)
                    continue
                if isinstance(outcome, GatewayError):
                    raise outcome
                return outcome
        finally:
            self._outcomes.forget(stored.id, future)
        current = await self._store.request_outcome(stored.id)
        final = outcome_of_final(current)
        if final is None:
            return outcome_of(current)
        if isinstance(final, GatewayError):
            raise final
        return final

    async def _resolve(self, request: SendRequest) -> tuple[InstallationRecord, LoadedIntegration]:
        return await resolve_sender(
            self._installations,
            self._catalog,
            org_id=request.org_id,
            from_number=request.from_number,
            integration_id=request.integration_id,
        )


async def _within(future: asyncio.Future[Outcome], seconds: float) -> Outcome | None:
    """``future``'s result, or None when it has none within ``seconds`` (it is then cancelled:
    its waiter is done with it). One timer, no task: this is every waiting send's path."""
    loop = asyncio.get_running_loop()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        future.cancel()

    timer = loop.call_later(seconds, expire)
    try:
        return await future
    except asyncio.CancelledError:
        if expired and not _cancelling():
            return None
        raise
    finally:
        timer.cancel()


def _cancelling() -> bool:
    """Whether the running task itself is being cancelled (its caller went away)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def message_slots(
    limits: SendLimits, installation: InstallationRecord, message: MessageRecord
) -> tuple[RateSlot, ...]:
    """The rate slots ``message`` leaves under: its sender's number as stored (normalised)."""
    # Keyed by the limits' identity, checked on a hit: an id is only reused once its object is
    # gone, and the entry keeps its object alive.
    key = (id(limits), installation.id, installation.default_region, message.from_number)
    found = _SLOTS.get((key, message.segments))
    if found is None or found[0] is not limits:
        sender = normalize_number(message.from_number, installation.default_region)
        slots = rate_slots(limits, installation.id, sender, message.segments)
        found = _SLOTS.put((key, message.segments), (limits, slots))
    return found[1]


def installation_limits(
    installation: InstallationRecord, integration: LoadedIntegration
) -> SendLimits:
    """The installation's limits, with the definition's defaults where it sets none."""
    key = _limits_key(installation, integration)
    found = _LIMITS.get(key)
    if found is None:
        own = limits_from_json(installation.send_limits_json)
        found = _LIMITS.put(key, effective_limits(own, integration.definition.throughput))
    return found


def _limits_key(
    installation: InstallationRecord, integration: LoadedIntegration
) -> tuple[str, datetime, str, str, int]:
    """What an installation's effective limits follow from: its record as changed last (its
    own limits, the choices that pick the definition's variant) and the definition's version."""
    return (
        installation.id,
        installation.updated_at,
        installation.send_limits_json,
        integration.id,
        integration.version,
    )


# Every send works out its installation's limits and its message's rate slots (a limit parsed
# from JSON, the definition's defaults, its sender normalised): kept here, keyed by what they
# follow from, so that a changed installation or definition is a new key, never a stale hit.
_LIMITS: CappedCache[tuple[str, datetime, str, str, int], SendLimits] = CappedCache()
_SLOTS: CappedCache[
    tuple[tuple[int, str, str | None, str], int], tuple[SendLimits, tuple[RateSlot, ...]]
] = CappedCache()


def _new_message(
    request: SendRequest,
    installation: InstallationRecord,
    integration: LoadedIntegration,
    now: datetime,
    *,
    notify: bool,
    lease: tuple[str, datetime] | None,
) -> MessageRecord:
    """The message as recorded before anything else happens."""
    text = request.text
    encoding = text_encoding(text)
    segments = segment_count(text, encoding) if text else 0
    return MessageRecord(
        id=new_id(),
        org_id=request.org_id,
        installation_id=installation.id,
        integration_id=integration.id,
        kind=request.kind,
        from_number=request.from_number,
        to_number=request.to,
        text=request.text,
        media_url=request.media_url or None,
        state=MessageState.QUEUED if lease is None else MessageState.SENDING,
        lease_owner=None if lease is None else lease[0],
        lease_until=None if lease is None else lease[1],
        provider_message_id=None,
        provider_status=None,
        attempts=0,
        error=None,
        metadata=dict(request.metadata),
        idempotency_key=request.idempotency_key or None,
        request_fingerprint=request.fingerprint() if request.idempotency_key else None,
        reply_json=None,
        created_at=now,
        updated_at=now,
        encoding=encoding,
        segments=segments if request.kind is MessageKind.SMS or text else 0,
        send_at=request.send_at,
        ordered=not request.unordered,
        notify=notify,
        request_json=request_json(request),
    )


class MessageRates:
    """The rates a queued message is claimed under: its installation's limits (cached with the
    organisation's installations) and the definition's defaults."""

    def __init__(self, *, installations: InstallationDirectory, catalog: IntegrationCatalog):
        self._installations = installations
        self._catalog = catalog

    async def __call__(self, message: MessageRecord) -> tuple[RateSlot, ...]:
        try:
            installation = await self._installations.enabled(
                message.org_id, message.installation_id
            )
        except NotFound:  # disabled since: its attempt fails with the reason
            return ()
        integration = chosen(await self._catalog.get(installation.integration_id), installation)
        limits = installation_limits(installation, integration)
        return message_slots(limits, installation, message)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The send path and the queue it feeds, and (ext) the conversation signals, wired
    (:func:`build_delivery`)."""

    send_path: SendPath
    queue: DeliveryQueue
    # (ext) SendTyping and MarkRead, through the same provider calls as the sends
    signals: ConversationSignals


def build_delivery(
    *,
    store: Store,
    catalog: IntegrationCatalog,
    installations: InstallationDirectory,
    outbound: OutboundClient,
    hub: EventHub,
    auth: InstallationAuth | None,
    on_sent: Callable[[MessageRecord], Awaitable[None]] | None,
    policy: RetryPolicy,
    provider_timeout_s: float,
    concurrency: int,
    max_queued: int,
    reply_margin_s: float,
    lease_s: float = 0.0,
    owner: str | None = None,
    exchanges: ExchangeLog | None = None,
    metrics: Metrics = NO_METRICS,
) -> Delivery:
    """The send path, its delivery queue and what they share, from their collaborators."""
    owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    outcomes = Outcomes()
    attempt = ProviderAttempt(
        installations=installations,
        outbound=outbound,
        provider_timeout_s=provider_timeout_s,
        auth=auth,
        exchanges=exchanges,
    )
    deliverer = Deliverer(
        store=store,
        catalog=catalog,
        installations=installations,
        attempt=attempt,
        hub=hub,
        outcomes=outcomes,
        owner=owner,
        policy=policy,
        on_sent=on_sent,
        metrics=metrics,
    )
    queue = DeliveryQueue(
        store=store,
        deliver=deliverer.deliver,
        abandon=deliverer.abandon,
        rates_of=MessageRates(installations=installations, catalog=catalog),
        owner=owner,
        # An attempt makes its requests one after another, each within the provider timeout;
        # a lease this long outlives all but the longest sends (docs/delivery.md, "Leases and
        # replicas").
        lease_s=lease_s or 4 * provider_timeout_s + 30,
        concurrency=concurrency,
    )
    send_path = SendPath(
        store=store,
        catalog=catalog,
        installations=installations,
        queue=queue,
        outcomes=outcomes,
        max_queued=max_queued,
        reply_margin_s=reply_margin_s,
    )
    signals = ConversationSignals(catalog=catalog, installations=installations, attempt=attempt)
    return Delivery(send_path=send_path, queue=queue, signals=signals)
