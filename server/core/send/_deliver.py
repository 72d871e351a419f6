"""Delivering a claimed message (docs/delivery.md): one attempt, then its end — SENT, FAILED, or
QUEUED again for a retry — recorded in one store write, with the outcome event when the caller
was replied before the outcome was known.

    claimed message (``sending``, leased to this process)
    → its installation and integration → one attempt (core/send/_attempt.py)
    → the verdict on a failure (core/send/_retry.py) → finish_attempt (one transaction)
    → the waiting callers of this process, the stream (EventHub), held receipts
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from ...engine import RequestTemplate
from ...errors import (
    FailedPrecondition,
    GatewayError,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
)
from ...metrics import NO_METRICS, Metrics
from ...store import (
    AttemptRecord,
    InboundEventType,
    InstallationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    NewEvent,
    OptOutRecord,
    Store,
)
from ...tracing import traced
from .._catalog import IntegrationCatalog, LoadedIntegration
from .._events import EventHub
from .._installations import InstallationDirectory
from .._numbers import normalize_address, normalize_number
from .._provider_failures import nothing_sent
from ._attempt import AttemptFailed, ProviderAttempt, Sendable
from ._request import SendOutcome, SendRequest, error_json, outcome_of, request_of, stored_reply
from ._retry import OUTCOME_UNKNOWN, RetryPolicy, Verdict, retry_delay, verdict

__all__ = [
    "Deliverer",
    "Outcome",
    "Outcomes",
    "Requeued",
    "Resolved",
    "chosen",
    "opt_out_address",
    "opted_out",
    "outcome_of_final",
    "resolve_sender",
    "template_for",
]

logger = logging.getLogger(__name__)


#: A message's installation, integration (as its choices make it) and send request, as the send
#: path resolved them when it accepted the message.
Resolved = tuple[InstallationRecord, LoadedIntegration, SendRequest]


@dataclass(frozen=True, slots=True)
class Requeued:
    """Not an outcome yet: the message is queued again, to be tried at ``retry_at``."""

    retry_at: datetime


#: What a waiting caller is told: the send's reply, the error it failed with, or that it waits
#: for a retry.
Outcome = SendOutcome | GatewayError | Requeued


class Outcomes:
    """The callers of this process waiting for messages' outcomes."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[Outcome]]] = {}

    def future(self, message_id: str) -> asyncio.Future[Outcome]:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(message_id, []).append(future)
        return future

    def forget(self, message_id: str, future: asyncio.Future[Outcome]) -> None:
        waiting = self._waiting.get(message_id)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._waiting[message_id]

    def settle(self, message_id: str, outcome: Outcome) -> None:
        for future in self._waiting.pop(message_id, ()):
            if not future.done():
                future.set_result(outcome)


def outcome_of_final(message: MessageRecord) -> SendOutcome | GatewayError | None:
    """A finished message's outcome as a caller of another process gets it (None: not
    finished). Without a stored reply a failure is told by its recorded error."""
    if message.state in (MessageState.QUEUED, MessageState.SENDING, MessageState.PENDING):
        return None
    if message.reply_json is not None:
        reply = stored_reply(message.reply_json)
        return reply if isinstance(reply, GatewayError) else _fresh(reply)
    if message.state is MessageState.CANCELLED:
        return FailedPrecondition("the message was cancelled", reason="MESSAGE_CANCELLED")
    if message.state is MessageState.FAILED:
        return FailedPrecondition(message.error or "the send failed", reason="SEND_FAILED")
    return outcome_of(message)


def _fresh(outcome: SendOutcome) -> SendOutcome:
    return replace(outcome, replayed=False)


@dataclass(frozen=True, slots=True)
class _Ending:
    """How an attempt ends the message."""

    state: MessageState
    error: GatewayError | None = None
    retry_at: datetime | None = None


class Deliverer:
    """Makes one attempt of a claimed message and records its end."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        attempt: ProviderAttempt,
        hub: EventHub,
        outcomes: Outcomes,
        owner: str,
        policy: RetryPolicy,
        on_sent: Callable[[MessageRecord], Awaitable[None]] | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._catalog = catalog
        self._installations = installations
        self._attempt = attempt
        self._hub = hub
        self._outcomes = outcomes
        self._owner = owner
        self._policy = policy
        self._on_sent = on_sent

    async def sendable(
        self,
        message: MessageRecord,
        resolved: Resolved | None = None,
    ) -> Sendable:
        """What sending ``message`` needs (``resolved``: its installation, integration and
        request, when the caller has them already)."""
        if resolved is None:
            installation = await self._installations.enabled(
                message.org_id, message.installation_id
            )
            integration = chosen(await self._catalog.get(message.integration_id), installation)
            request = request_of(message)
        else:
            installation, integration, request = resolved
        return Sendable(
            message=message,
            installation=installation,
            integration=integration,
            template=template_for(message.kind, integration),
            request=request,
        )

    async def deliver(
        self,
        message: MessageRecord,
        resolved: Resolved | None = None,
    ) -> bool:
        """One attempt of ``message`` (``sending``, leased to this process), and its end: True
        when the message ended here, False when it is queued again for a retry."""
        started = datetime.now(UTC)
        try:
            sendable = await self.sendable(message, resolved)
            if resolved is None:  # claimed from the queue, not as it was accepted
                await self._refuse_opted_out(sendable)
            outcome = await self._attempt.make(sendable)
        except AttemptFailed as failed:
            return await self._failed(message, failed, started)
        except GatewayError as error:  # before any call: the installation or integration
            return await self._failed(message, AttemptFailed(error, 0), started)
        except Exception:
            logger.exception("a send attempt failed unexpectedly", extra={"message_id": message.id})
            internal = FailedPrecondition("the send failed inside the gateway", reason="INTERNAL")
            return await self._failed(message, AttemptFailed(internal, 0), started)
        await self._sent(message, outcome, started)
        return True

    async def _refuse_opted_out(self, sendable: Sendable) -> None:
        """A queued message whose recipient opted out after it was accepted is not sent: its
        acceptance checked only that moment (docs/delivery.md, "Opt-outs"). A message claimed
        as it was accepted was checked in that same transaction."""
        message, installation = sendable.message, sendable.installation
        from_number, to_number = opt_out_address(
            message, installation, sendable.integration.definition.addresses
        )
        found = await self._store.list_opt_outs(
            installation_id=installation.id,
            from_number=from_number,
            to_number=to_number,
            limit=1,
        )
        if found:
            raise opted_out(installation.id, message.from_number)

    async def _sent(self, message: MessageRecord, outcome: SendOutcome, started: datetime) -> None:
        now = datetime.now(UTC)
        attempts = message.attempts + outcome.attempts
        if message.attempts:  # the calls of earlier attempts count too
            outcome = replace(outcome, attempts=attempts)
        finishing = self._store.finish_attempt(
            message,
            owner=self._owner,
            state=MessageState.SENT,
            attempt=AttemptRecord(
                number=len(message.attempt_log) + 1,
                started_at=started,
                ended_at=now,
                provider_status=outcome.provider_status,
            ),
            attempts=attempts,
            provider_message_id=outcome.provider_message_id,
            provider_status=outcome.provider_status,
            error=None,
            reply_json=outcome.to_json() if message.idempotency_key else None,
            provider_message_ids=outcome.provider_message_ids or (),
            outcome_event=partial(
                _event, message, InboundEventType.MESSAGE_SENT, outcome, None, now
            ),
            now=now,
        )
        record, event = await traced("store.finish_attempt", finishing)
        if record is None:
            logger.warning(
                "a sent message's lease was taken over", extra={"message_id": message.id}
            )
            return
        self._ended(message, "sent", "OK", outcome.provider_status, now - started, attempts, event)
        if event is not None:
            self._hub.notify()
        self._outcomes.settle(message.id, outcome)
        if self._on_sent is not None:  # also without a provider id: receipts held by our id
            await self._on_sent(record)

    async def _failed(
        self,
        message: MessageRecord,
        failed: AttemptFailed,
        started: datetime,
    ) -> bool:
        """Record a failed attempt; True when the message ended (False: queued again)."""
        now = datetime.now(UTC)
        attempts = message.attempts + failed.calls
        ending = self._ending(message, failed, now)
        error = ending.error or failed.error
        status = getattr(failed.error, "provider_status", 0) or None
        final = ending.state is MessageState.FAILED
        releasable = nothing_sent(error) and not failed.sent
        sent = failed.sent
        finishing = self._store.finish_attempt(
            message,
            owner=self._owner,
            state=ending.state,
            attempt=AttemptRecord(
                number=len(message.attempt_log) + 1,
                started_at=started,
                ended_at=now,
                provider_status=status,
                reason=failed.error.reason,
                error=failed.error.message[:500],
                retry_at=ending.retry_at,
            ),
            attempts=attempts,
            provider_status=status,
            error=_error_text(error),
            reply_json=(
                error_json(error) if final and message.idempotency_key and not releasable else None
            ),
            provider_message_id=sent[0].provider_message_id if sent else None,
            provider_message_ids=tuple(o.provider_message_id or "" for o in sent) if sent else (),
            next_attempt_at=ending.retry_at,
            outcome_event=(
                partial(_event, message, InboundEventType.MESSAGE_FAILED, None, error, now)
                if final
                else None
            ),
            now=now,
        )
        record, event = await traced("store.finish_attempt", finishing)
        if record is None:
            logger.warning("a message's lease was taken over", extra={"message_id": message.id})
            return True
        outcome = "failed" if final else "retried"
        self._ended(message, outcome, error.grpc_code.name, status, now - started, attempts, event)
        if event is not None:
            self._hub.notify()
        if ending.retry_at is not None:  # the queue reads again when this delivery ends
            self._outcomes.settle(message.id, Requeued(ending.retry_at))
            return False
        if error.reason == "RECIPIENT_OPTED_OUT":
            await self._keep_opt_out(message, now)
        self._outcomes.settle(message.id, error)
        return True

    def _ended(
        self,
        message: MessageRecord,
        outcome: str,
        code: str,
        provider_status: int | None,
        took: timedelta,
        attempts: int,
        event: object,
    ) -> None:
        """Count an attempt's end and log it: one line per attempt, with identifiers, the
        outcome and timings only — never a number, text, header or property value."""
        integration = message.integration_id
        self._metrics.send_ended(integration, outcome, code)
        if event is not None:
            self._metrics.events_appended(integration, 1)
        if not logger.isEnabledFor(logging.INFO):
            return
        logger.info(
            "send ended",
            extra={
                "message_id": message.id,
                "integration": integration,
                "outcome": outcome,
                "code": code,
                "provider_status": provider_status,
                "duration_ms": round(took.total_seconds() * 1000, 1),
                "attempts": attempts,
            },
        )

    def _ending(
        self,
        message: MessageRecord,
        failed: AttemptFailed,
        now: datetime,
    ) -> _Ending:
        judged = verdict(failed.error, provider_deduplicates=failed.deduplicates)
        if judged is Verdict.UNKNOWN:
            return _Ending(MessageState.FAILED, _unknown(failed.error))
        if judged is Verdict.FINAL or failed.sent:
            return _Ending(MessageState.FAILED)
        made = len(message.attempt_log) + 1  # attempts, this one included
        delay = retry_delay(self._policy, made, failed.error.retry_after_s, random.random())  # noqa: S311 - jitter
        retry_at = now + timedelta(seconds=delay)
        if made >= self._policy.max_attempts or self._too_old(message, retry_at):
            # Given up: a deduplicated request that got no answer may still have been sent.
            maybe_sent = verdict(failed.error) is Verdict.UNKNOWN
            return _Ending(MessageState.FAILED, _unknown(failed.error) if maybe_sent else None)
        return _Ending(MessageState.QUEUED, retry_at=retry_at)

    def _too_old(self, message: MessageRecord, retry_at: datetime) -> bool:
        """Whether a retry at ``retry_at`` comes later than ``max_age_s`` after the message was
        due (its send time, for a scheduled one)."""
        due = max(message.created_at, message.send_at or message.created_at)
        return (retry_at - due).total_seconds() > self._policy.max_age_s

    async def _keep_opt_out(self, message: MessageRecord, now: datetime) -> None:
        """The provider said the recipient opted out: later sends are refused before they reach
        it (docs/delivery.md, "Opt-outs"), under the numbers normalised as the send's check
        looks them up."""
        try:
            installation = await self._installations.get(message.installation_id)
            integration = await self._catalog.get(message.integration_id)
            from_number, to_number = opt_out_address(
                message, installation, integration.definition.addresses
            )
            await self._store.record_opt_out(
                OptOutRecord(
                    installation_id=message.installation_id,
                    org_id=message.org_id,
                    from_number=from_number,
                    to_number=to_number,
                    source="provider",
                    created_at=now,
                )
            )
        except Exception:
            logger.exception("could not keep an opt-out", extra={"message_id": message.id})

    async def abandon(self, message: MessageRecord) -> None:
        """A ``sending`` message whose lease expired: its process stopped while calling the
        provider, so whether the provider has it cannot be known. FAILED with reason
        OUTCOME_UNKNOWN — or queued again when its request is provider_deduplicates."""
        now = datetime.now(UTC)
        deduplicates = False
        try:
            installation = await self._installations.get(message.installation_id)
            integration = chosen(await self._catalog.get(message.integration_id), installation)
            # Which request was in flight is not known: only when every one deduplicates.
            deduplicates = _all_deduplicate(template_for(message.kind, integration))
        except GatewayError:
            pass
        made = len(message.attempt_log) + 1
        if made >= self._policy.max_attempts or self._too_old(message, now):
            deduplicates = False
        error = OutcomeUnknown(
            "the gateway stopped while the provider was being called: the message may have been"
            " sent",
            integration=message.integration_id,
        )
        state = MessageState.QUEUED if deduplicates else MessageState.FAILED
        record, event = await self._store.finish_attempt(
            message,
            owner=None,
            state=state,
            attempt=AttemptRecord(
                number=len(message.attempt_log) + 1,
                started_at=message.updated_at,
                ended_at=now,
                reason=OUTCOME_UNKNOWN,
                error=error.message,
                retry_at=now if deduplicates else None,
            ),
            attempts=message.attempts + 1,
            error=_error_text(error),
            reply_json=error_json(error) if message.idempotency_key and not deduplicates else None,
            next_attempt_at=now if deduplicates else None,
            outcome_event=(
                None
                if deduplicates
                else partial(_event, message, InboundEventType.MESSAGE_FAILED, None, error, now)
            ),
            now=now,
        )
        if record is not None:
            self._metrics.send_ended(message.integration_id, "abandoned", error.grpc_code.name)
            logger.warning(
                "a send's process stopped while calling the provider",
                extra={"message_id": message.id, "requeued": deduplicates},
            )
            if event is not None:
                self._hub.notify()


def _all_deduplicate(template: RequestTemplate) -> bool:
    """Whether every request of a send (its ``then`` chain too) is provider_deduplicates."""
    step: RequestTemplate | None = template
    while step is not None:
        if not step.provider_deduplicates:
            return False
        step = step.then
    return True


def _unknown(error: GatewayError) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"the provider may have sent the message: {error.message}",
        integration=error.metadata.get("integration", ""),
        metadata={"cause": error.reason},
    )


def _error_text(error: GatewayError) -> str:
    """A failure as the message and its MESSAGE_FAILED event keep it: the reason first, so that
    a reader of the message can tell OUTCOME_UNKNOWN (the provider may have sent it) from a
    failure that sent nothing (the Message.State FAILED contract in gateway.proto)."""
    return f"{error.reason}: {error.message}"[:500]


def _event(
    message: MessageRecord,
    kind: InboundEventType,
    outcome: SendOutcome | None,
    error: GatewayError | None,
    now: datetime,
) -> NewEvent:
    """The event a message's outcome is published as, when its caller was replied first (the
    store builds it only then: ``partial`` of this is what an attempt's end hands it)."""
    return NewEvent(
        type=kind.value,
        org_id=message.org_id,
        installation_id=message.installation_id,
        integration_id=message.integration_id,
        users=(),
        from_number=message.from_number,
        to_number=message.to_number,
        text="",
        media_urls=(),
        provider_message_id=(outcome.provider_message_id or "") if outcome else "",
        message_id=message.id,
        status="sent" if outcome is not None else "failed",
        error=_error_text(error) if error is not None else "",
        metadata=message.metadata,
        received_at=now,
        request_id="",
        dedupe_key=None,
    )


def opted_out(installation_id: str, from_number: str) -> FailedPrecondition:
    """The refusal of a send to a recipient who opted out of ``from_number``."""
    return FailedPrecondition(
        "the recipient opted out of messages from this number",
        reason="RECIPIENT_OPTED_OUT",
        metadata={"installation": installation_id, "from": from_number},
    )


def opt_out_address(
    message: MessageRecord, installation: InstallationRecord, addresses: str = "phone"
) -> tuple[str, str]:
    """The (from, to) an opt-out of this message is kept and looked up under: both normalised,
    so that a number written otherwise is the same number (docs/delivery.md, "Opt-outs")."""
    region = installation.default_region
    return (
        normalize_address(message.from_number, region, addresses),
        normalize_address(message.to_number, region, addresses),
    )


def chosen(integration: LoadedIntegration, installation: InstallationRecord) -> LoadedIntegration:
    """The integration as this installation's choices make it (docs/format.md, "Variants"): the
    definition of each combination was built at load, so this is a lookup. Choices are never
    secret, so their stored values are plain."""
    definition = integration.definition.choose(installation.properties)
    if definition is integration.definition:
        return integration
    return replace(integration, definition=definition)


def template_for(kind: MessageKind, integration: LoadedIntegration) -> RequestTemplate:
    """The definition's request for this kind of send."""
    definition = integration.definition
    template = definition.send_message if kind is MessageKind.SMS else definition.send_file
    if template is None:
        raise FailedPrecondition(
            f"the integration {integration.id!r} cannot send files",
            reason="SEND_FILE_UNSUPPORTED",
            metadata={"integration": integration.id},
        )
    return template


async def resolve_sender(
    installations: InstallationDirectory,
    catalog: IntegrationCatalog,
    *,
    org_id: str,
    from_number: str,
    integration_id: str,
) -> tuple[InstallationRecord, LoadedIntegration]:
    """The installation that sends from ``from_number``: the organisation's enabled one holding
    it (docs/format.md, "Sending"), with the integration as its choices make it; a send's and
    (ext) a conversation signal's."""
    enabled = list(await installations.enabled_for_org(org_id))
    if integration_id:
        enabled = [c for c in enabled if c.integration_id == integration_id]
    if not enabled:
        what = f" of integration {integration_id!r}" if integration_id else ""
        raise NotFound(
            f"organisation {org_id!r} has no enabled installation{what}",
            reason="INSTALLATION_NOT_FOUND",
            metadata={"org": org_id},
        )
    holders = [c for c in enabled if _holds(c, from_number)]
    if not holders:
        raise PermissionDenied(
            "the from number is not a number of the organisation's installations",
            reason="NUMBER_NOT_ASSIGNED",
            metadata={"org": org_id, "from": from_number},
        )
    if len(holders) > 1:
        raise InvalidRequest(
            "several integrations hold this number; name one with integration_id",
            reason="AMBIGUOUS_INTEGRATION",
            violations=[("integration_id", "required: several integrations hold the number")],
        )
    installation = holders[0]
    integration = await catalog.get(installation.integration_id)
    return installation, chosen(integration, installation)


def _holds(installation: InstallationRecord, from_number: str) -> bool:
    """Whether ``installation`` holds ``from``: normalised as a phone number, or (ext) as
    written, trimmed — how an installation of a definition whose ``addresses`` are ids or user
    names keeps its numbers (docs/format.md, "Addresses"). A phone installation's numbers are
    all in their normalised form, which normalises to itself, so ``from`` written as stored is
    found either way — first as written, with no parsing (core/_numbers.py)."""
    numbers = {n.number for n in installation.numbers}
    return (
        from_number.strip() in numbers
        or normalize_number(from_number, installation.default_region) in numbers
    )
