"""Ingest: a provider's webhook request becomes stored events, before it is answered.

    path → integration (and installation, when the URL carries its token)
    → (ext) a verification handshake? answered, kept, no event (docs/format.md,
      "Verification handshakes")
    → match (engine) → route each event → dedupe + store request and events in one transaction
    → wake subscribers → answer 2xx (the definition's answer: docs/format.md, "Answers")

Routing (docs/format.md, "Numbers and routing" and "Receipts"): an inbound message goes to the
installation named by the URL's token, or — through the per-integration URL — to the enabled
installation holding its ``to`` number, and to the users assigned to that number. A receipt goes
to the message we sent with that provider id; one whose message is not known yet is held (the
send's reply may still be on its way) and completed when the send records its provider id, or
released after ``receipt_wait`` (:class:`HeldReceipts`).

Nothing is dropped: a request no model matches, or whose events no installation owns, is kept
with its reason (listable, replayable) and answered 2xx so the provider does not retry forever.
A body that cannot be parsed is kept (unmatched, with the reason) and answered 400; an unknown
integration or token 404. Every kept request is masked and holds its answer and timing
(``_kept``, docs/operations.md "Webhook requests"). The OAuth2
callback comes the same way (the sidecar forwards it like a webhook) and is handed to the
:class:`OAuthCallback`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import parse_qsl

from ..._cpu import off_loop
from ...engine import (
    Definition,
    EventType,
    HandshakeMatch,
    HandshakeRefused,
    InboundEvent,
    MatchResult,
    WebhookAnswer,
    WebhookAuth,
    WebhookParseError,
    WebhookRequest,
    answer_handshake,
    choose_answer,
    match_handshake,
    match_webhook,
    needs_properties,
)
from ...errors import NotFound
from ...metrics import NO_METRICS, Metrics
from ...security.secrets import hash_token
from ...security.webhook_auth import SignedRequest, WebhookAuthFailed, verify_webhook
from ...sidecar import Delivery, Verdict, is_oauth_callback, kept_webhook_path, webhook_target
from ...store import (
    HeldReceipt,
    InstallationRecord,
    MediaHold,
    MessageRecord,
    MessageState,
    MessageTransition,
    NewEvent,
    Store,
    WebhookOutcome,
    WebhookRequestRecord,
)
from ...tracing import remember_webhook_trace, span, traced
from .._catalog import IntegrationCatalog, LoadedIntegration
from .._events import EventHub
from .._ids import new_id
from .._installations import InstallationDirectory
from .._numbers import as_stored, normalize_address
from .._oauth_callback import OAuthCallback
from ._contact_names import ContactNames
from ._held_receipts import HeldReceipts, is_our_id_key, our_id_key
from ._kept import KeptRequest, WebhookMasks
from ._transitions import transition_for

__all__ = ["Ingestor", "ReplayResult"]

logger = logging.getLogger(__name__)

_MAX_REASON = 2000
_MAX_KEY_PART = 64  # a status longer than this is keyed by its digest
_DESCRIBED_UNMATCHED = 20  # each described in at least ~100 characters
_MAX_SHOWN_ID = 80  # of a receipt's `$gateway_id$` in a stored reason

# Parsing and matching run on the event loop only when that is sure to be quick; otherwise off it
# (server/_cpu.py). Measured: any body of 4 KiB parses in under 1.5 ms; matching costs up to
# ~60 µs per payload (a definition with many models, a payload none matches), and a JSON body has
# at most one payload more than it has ","s, an XML body no more payloads than it has "<"s (one per
# tag). Handing work over costs ~60 µs: small webhooks stay.
_INLINE_MAX_BYTES = 4096
_INLINE_MAX_COMMAS = 16
_INLINE_MAX_TAGS = 64  # an element has two tags, so about as many payloads as 32 commas


@dataclass(frozen=True, kw_only=True, slots=True)
class _Routed:
    events: list[NewEvent]
    transitions: list[MessageTransition]
    held: list[HeldReceipt]
    problems: list[str]  # unmatched payloads and unroutable events, in plain sentences
    unmatched: bool
    unroutable: bool
    # The installations routing read by number, by id: the owner of the request's first event
    # is one of them more often than not, and need not be read again.
    read: dict[str, InstallationRecord] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplayResult:
    events: tuple[NewEvent, ...]
    reason: str


def _verdict(status: int, text: str = "") -> Verdict:
    return Verdict(http_status=status, body=text.encode(), content_type="text/plain; charset=utf-8")


def _answered(answer: WebhookAnswer) -> Verdict:
    """The verdict for a stored request: the definition's answer (docs/format.md, "Answers").

    Only stored requests come here; every status the core decides itself (400, 401, 404, and the
    503 or 500 of a store that failed) is answered by :func:`_verdict` or the sidecar, never by a
    definition.
    """
    return Verdict(
        http_status=answer.status,
        body=answer.body.encode("utf-8", "replace"),
        content_type=answer.content_type,
    )


class MediaHolding(Protocol):
    """Where inbound files are fetched (:class:`~server.core.media.MediaFetcher`)."""

    def hold(
        self, events: Sequence[NewEvent], now: datetime
    ) -> tuple[list[NewEvent], list[MediaHold]]: ...

    def wake(self) -> None: ...


class Ingestor:
    """The core side of the webhook path; the sidecar's :class:`IngestHandler` in-process."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        installations: InstallationDirectory,
        hub: EventHub,
        held_receipts: HeldReceipts,
        oauth_callback: OAuthCallback,
        media: MediaHolding | None = None,
        contact_names: ContactNames | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._contact_names = contact_names
        self._metrics = metrics
        self._installations = installations
        self._media = media
        self._store = store
        self._catalog = catalog
        self._hub = hub
        self._held_receipts = held_receipts
        self._oauth_callback = oauth_callback
        self._masks = WebhookMasks(installations)

    # --- the sidecar's entry point --------------------------------------------------------------

    async def ingest(self, delivery: Delivery) -> Verdict:
        started = time.perf_counter()
        target = webhook_target(delivery.path)
        if target is None:
            if is_oauth_callback(delivery.path):
                return await self._oauth_callback.handle(delivery)
            return _verdict(404, "not found")
        integration_id, token = target
        try:
            integration = await self._catalog.get(integration_id)
        except NotFound:
            self._metrics.webhook("", "not_found")  # the path's id is anyone's text: no label
            return _verdict(404, "unknown integration")
        installation: InstallationRecord | None = None
        if token is not None:
            installation = await self._installation_for_token(integration_id, token)
            if installation is None:
                self._metrics.webhook(integration_id, "not_found")
                return _verdict(404, "unknown webhook address")
        headers = delivery.headers
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        request = WebhookRequest(
            method=delivery.method.upper(),
            content_type=content_type or None,
            body=delivery.body,
            query=tuple(parse_qsl(delivery.query, keep_blank_values=True)),
            headers=headers,
        )
        auth = integration.definition.webhook_auth
        now = datetime.now(UTC)
        request_id = new_id()
        kept = KeptRequest(
            id=request_id,
            received_at=now,
            integration_id=integration_id,
            method=request.method,
            path=kept_webhook_path(integration_id, with_token=token is not None),
            query=delivery.query,
            headers=headers,
            body=delivery.body,
            content_type=content_type,
            started=started,
        )
        signed = SignedRequest(
            method=request.method, url=delivery.url, headers=headers, body=delivery.body
        )
        if integration.definition.handshakes:
            try:
                handshake = await _handshake_of(integration.definition, request)
            except WebhookParseError as exc:
                return await self._unparseable(kept, integration, installation, exc)
            if handshake is not None:
                return await self._handshake(kept, integration, installation, handshake, signed)
        if auth is not None and installation is not None:
            refused = self._authenticate(auth, installation, signed)
            if refused is not None:
                return await self._refuse(kept, integration, installation, refused)
        try:
            result = await traced("match", _match(integration.definition, request))
        except WebhookParseError as exc:
            return await self._unparseable(kept, integration, installation, exc)
        routing = self._route(integration, installation, result, request_id, now)
        routed = await traced("route", routing)
        owner_id = _owner_id(routed)
        owner: InstallationRecord | str | None = routed.read.get(owner_id or "", owner_id)
        if auth is not None and installation is None:
            # Through the per-integration URL the owner is known only once the body is routed:
            # the request is verified with that installation's secret before anything is kept.
            owner = await self._owner(routed)
            refused = (
                "no installation to verify the signature against"
                if owner is None
                else self._authenticate(auth, owner, signed)
            )
            if refused is not None:
                return await self._refuse(kept, integration, None, refused)
        verdict = _answered(choose_answer(integration.definition, result))
        record = await self._record(
            kept,
            integration.definition,
            installation,
            outcome=_outcome(routed),
            reason="; ".join(routed.problems)[:_MAX_REASON],
            verdict=verdict,
            owner=owner,
        )
        events, holds = self._hold_media(routed.events, now)
        storing = self._store.ingest(
            record, events, transitions=routed.transitions, held=routed.held, media_holds=holds
        )
        outcome = await traced("store.ingest", storing)
        remember_webhook_trace(request_id)  # its events' `stream` spans join this trace
        if routed.held:
            self._held_receipts.remember(routed.held)
        if holds and self._media is not None:
            self._media.wake()
        if outcome.events:
            self._hub.notify()
        kind = "duplicate" if outcome.duplicates and not outcome.events else str(record.outcome)
        self._metrics.webhook(integration_id, kind)
        self._metrics.events_appended(integration_id, len(outcome.events))
        logger.info(
            "webhook ingested",
            extra={
                "integration": integration_id,
                "events": len(outcome.events),
                "duplicates": outcome.duplicates,
                "held": len(routed.held),
                "outcome": kind,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return verdict

    async def _record(
        self,
        kept: KeptRequest,
        definition: Definition,
        installation: InstallationRecord | None,
        *,
        outcome: WebhookOutcome,
        reason: str,
        verdict: Verdict,
        owner: InstallationRecord | str | None = None,
    ) -> WebhookRequestRecord:
        """``kept`` as its record, masked with the secrets of the installation whose URL it came
        through, else of ``owner`` (the installation that owns its first event: its record when
        the signature check has read it, else its id), off the event loop for a body too large
        to mask quickly, as parsing is."""
        known = installation or owner
        mask = (
            await self._masks.of_id(definition, known)
            if known is None or isinstance(known, str)
            else self._masks.of(definition, known)
        )
        record = functools.partial(
            kept.record,
            mask,
            definition,
            installation_id=installation.id if installation else None,
            outcome=outcome,
            reason=reason,
            answer=(verdict.http_status, verdict.body),
        )
        if not mask.values or len(kept.body) <= _INLINE_MAX_BYTES:
            return record()
        return await off_loop(record)

    async def _unparseable(
        self,
        kept: KeptRequest,
        integration: LoadedIntegration,
        installation: InstallationRecord | None,
        exc: WebhookParseError,
    ) -> Verdict:
        """A body that cannot be parsed: kept as unmatched with the reason, answered 400."""
        self._metrics.webhook(integration.id, "unparseable")
        logger.info("webhook body not parseable", extra={"integration": integration.id})
        verdict = _verdict(400, f"the body cannot be parsed: {exc}")
        record = await self._record(
            kept,
            integration.definition,
            installation,
            outcome=WebhookOutcome.UNMATCHED,
            reason=f"the body cannot be parsed: {exc}"[:_MAX_REASON],
            verdict=verdict,
        )
        await self._store.ingest(record, ())
        return verdict

    async def _handshake(
        self,
        kept: KeptRequest,
        integration: LoadedIntegration,
        installation: InstallationRecord | None,
        match: HandshakeMatch,
        signed: SignedRequest,
    ) -> Verdict:
        """(ext) A verification handshake (docs/format.md, "Verification handshakes"): checked
        (its WebhookAuth unless the handshake is unsigned, then its ``require``), kept as a
        matched request with no event, and answered as the handshake says; refused 401 (the
        signature) or 403 (``require``), and kept with the reason, otherwise."""
        definition = integration.definition
        handshake = match.handshake
        auth = definition.webhook_auth if handshake.signed else None
        properties = frozenset(p.name for p in definition.properties)
        if installation is None and (auth is not None or needs_properties(handshake, properties)):
            reason = (
                f"handshake {handshake.pointer} is checked against an installation's properties "
                "or signature, and through the per-integration URL there is no installation: "
                "point the provider at the installation's webhook URL"
            )
            return await self._refuse(kept, integration, None, reason, status=403)
        if auth is not None and installation is not None:
            refused = self._authenticate(auth, installation, signed)
            if refused is not None:
                return await self._refuse(kept, integration, installation, refused)
        values = self._installations.property_values(installation) if installation else {}
        try:
            answer = answer_handshake(match, values)
        except HandshakeRefused as exc:
            reason = f"handshake {handshake.pointer} refused: {exc.reason}"
            return await self._refuse(kept, integration, installation, reason, status=403)
        verdict = _answered(answer)
        record = await self._record(
            kept,
            definition,
            installation,
            outcome=WebhookOutcome.MATCHED,
            reason=f"verification handshake {handshake.pointer} answered",
            verdict=verdict,
        )
        await self._store.ingest(record, ())
        logger.info(
            "webhook handshake answered",
            extra={"integration": integration.id, "handshake": handshake.pointer},
        )
        return verdict

    def _hold_media(
        self, events: list[NewEvent], now: datetime
    ) -> tuple[Sequence[NewEvent], Sequence[MediaHold]]:
        """With media fetching on, the events with files are held until their files are kept
        (docs/media.md); the others go to the log now."""
        if self._media is None:
            return events, ()
        return self._media.hold(events, now)

    def _authenticate(
        self, auth: WebhookAuth, installation: InstallationRecord, request: SignedRequest
    ) -> str | None:
        """None when the request is genuine, else why not (docs/format.md, "WebhookAuth")."""
        try:
            with span("verify", {"msgbridge.installation": installation.id}):
                verify_webhook(
                    auth,
                    self._installations.property_values(installation),
                    request,
                    now=time.time(),
                )
        except WebhookAuthFailed as exc:
            return exc.reason
        return None

    async def _owner(self, routed: _Routed) -> InstallationRecord | None:
        owner_id = _owner_id(routed)
        if owner_id is None:
            return None
        return routed.read.get(owner_id) or await self._store.get_installation(owner_id)

    async def _refuse(
        self,
        kept: KeptRequest,
        integration: LoadedIntegration,
        installation: InstallationRecord | None,
        reason: str,
        *,
        status: int = 401,
    ) -> Verdict:
        """A request that failed its authenticity check: recorded, no event, answered 401 (or
        403: a verification handshake whose ``require`` fails)."""
        verdict = (
            _verdict(403, "the verification request was refused")
            if status == 403
            else _verdict(401, "the request could not be authenticated")
        )
        record = await self._record(
            kept,
            integration.definition,
            installation,
            outcome=WebhookOutcome.UNAUTHENTICATED,
            reason=reason,
            verdict=verdict,
        )
        await self._store.ingest(record, ())
        self._metrics.webhook(integration.id, "refused_signature")
        logger.warning(
            "webhook refused: authenticity check failed",
            extra={"integration": integration.id, "reason": reason},
        )
        return verdict

    async def _installation_for_token(
        self, integration_id: str, token: str
    ) -> InstallationRecord | None:
        token_hash = hash_token(token)
        record = await self._installations.by_webhook_token(integration_id, token_hash)
        if record is None or not record.enabled:
            return None
        # The lookup is by hash; the comparison of what was found is constant-time as well.
        if not hmac.compare_digest(record.webhook_token_hash, token_hash):
            return None
        return record

    # --- routing --------------------------------------------------------------------------------

    async def _route(
        self,
        integration: LoadedIntegration,
        installation: InstallationRecord | None,
        result: MatchResult,
        request_id: str,
        now: datetime,
    ) -> _Routed:
        routed = _Routed(
            events=[],
            transitions=[],
            held=[],
            problems=[],
            unmatched=bool(result.unmatched),
            unroutable=False,
        )
        # The stored reason is cut at _MAX_REASON characters: describing more payloads than can
        # show would only hold the event loop (a batch may have tens of thousands).
        if len(result.unmatched) > _DESCRIBED_UNMATCHED:
            routed.problems.append(
                f"{len(result.unmatched)} payloads matched no model; "
                f"the first {_DESCRIBED_UNMATCHED} are described"
            )
        for missing in result.unmatched[:_DESCRIBED_UNMATCHED]:
            where = f"payload {missing.payload_pointer}: " if missing.payload_pointer else ""
            closest = "; ".join(
                f"model {m.model} ({m.event_key!r}) failed at {m.reason}"
                for m in missing.near_misses
            )
            routed.problems.append(
                f"{where}{missing.reason}" + (f" ({closest})" if closest else "")
            )
        unroutable = False
        for event in result.events:
            if event.type.is_delivery:
                unroutable |= not await self._route_receipt(
                    integration, installation, event, request_id, now, routed
                )
            else:
                unroutable |= not await self._route_inbound(
                    integration, installation, event, request_id, now, routed
                )
        return replace(routed, unroutable=unroutable)

    async def _route_inbound(
        self,
        integration: LoadedIntegration,
        installation: InstallationRecord | None,
        event: InboundEvent,
        request_id: str,
        now: datetime,
        routed: _Routed,
    ) -> bool:
        to = event.to_number or ""
        addresses = integration.definition.addresses
        if installation is None and not to:
            # (ext) A provider that leaves `to` out relies on the URL to say whose the message
            # is; the per-integration URL does not (docs/format.md, "Numbers and routing").
            routed.problems.append(
                f"a {event.type.value} event matched model {event.model} but carries no `to` "
                "number, and through the per-integration URL no installation can be chosen "
                "without one: point the provider at the installation's webhook URL"
            )
            return False
        if installation is not None and not to and len(installation.numbers) == 1:
            # (ext) Through the installation's URL: its number, when it has only one.
            to = installation.numbers[0].number
            event = replace(event, to_number=to)
        exact = as_stored(to) if addresses == "phone" else None
        if installation is None:
            installation = await self._installation_by_number(integration.id, to, exact, addresses)
            if installation is None:
                routed.problems.append(
                    f"a {event.type.value} event to {to or 'no number'} matched model "
                    f"{event.model} but no enabled installation holds that number"
                )
                return False
            routed.read[installation.id] = installation
        held = {n.number for n in installation.numbers}
        # Written as stored: compared as it is; else normalised first.
        wanted = (
            exact
            if exact is not None and exact in held
            else normalize_address(to, installation.default_region, addresses)
        )
        users = next((n.users for n in installation.numbers if n.number == wanted), ())
        if event.type.is_consent:
            # Kept as the opt-out of (our number, the recipient), normalised as a send looks
            # them up (docs/delivery.md, "Opt-outs").
            sender = normalize_address(
                event.from_number or "", installation.default_region, addresses
            )
            event = replace(event, to_number=wanted, from_number=sender)
        if self._contact_names is not None:
            # (ext) a name cached for the sender, or a lookup started for its later messages
            # (docs/format.md, "Contact names"); the request is never held for one
            event = self._contact_names.named(event, installation, integration)
        routed.events.append(
            _new_event(event, installation, integration.id, request_id, now, users=users)
        )
        return True

    async def _installation_by_number(
        self, integration_id: str, to: str, exact: str | None, addresses: str
    ) -> InstallationRecord | None:
        """The enabled installation holding ``to``: looked up as it is written when that is
        how a number is stored (``exact``, no parsing: core/_numbers.py), else normalised."""
        if exact is not None:
            found = await self._store.find_installation_by_number(integration_id, exact)
            if found is not None:
                return found
        key = normalize_address(to, None, addresses)
        if key == exact:  # looked up already
            return None
        return await self._store.find_installation_by_number(integration_id, key)

    async def _route_receipt(
        self,
        integration: LoadedIntegration,
        installation: InstallationRecord | None,
        event: InboundEvent,
        request_id: str,
        now: datetime,
        routed: _Routed,
    ) -> bool:
        our_id = _our_id(event)
        if our_id is not None:
            return await self._route_by_our_id(
                integration, installation, event, our_id, request_id, now, routed
            )
        provider_id = event.provider_message_id or ""
        message = (
            await self._store.find_message_by_provider_id(integration.id, provider_id)
            if provider_id
            else None
        )
        if message is not None:
            _add_receipt(routed, event, message, request_id, now)
            return True
        if provider_id and not is_our_id_key(provider_id):
            # The send's reply may still be on its way: hold the receipt (docs/format.md,
            # "Receipts").
            pending = _new_event(event, installation, integration.id, request_id, now, users=())
            routed.held.append(
                HeldReceipt(
                    id=new_id(),
                    integration_id=integration.id,
                    provider_message_id=provider_id,
                    event=pending,
                    held_at=now,
                    release_at=now + self._held_receipts.wait,
                )
            )
            return True
        if installation is not None:
            routed.events.append(
                _new_event(event, installation, integration.id, request_id, now, users=())
            )
            return True
        routed.problems.append(
            f"a {event.type.value} receipt matched model {event.model} but carries no message id"
        )
        return False

    async def _route_by_our_id(
        self,
        integration: LoadedIntegration,
        installation: InstallationRecord | None,
        event: InboundEvent,
        our_id: str,
        request_id: str,
        now: datetime,
        routed: _Routed,
    ) -> bool:
        """(ext) A receipt that names our message id (``$gateway_id$``) goes to that message —
        only when the message was sent through this integration and, through an installation's
        URL, by that installation: one tenant cannot move another's message (docs/format.md,
        "Receipts")."""
        message = await self._store.get_message(our_id)
        if (
            message is not None
            and message.integration_id == integration.id
            and (installation is None or message.installation_id == installation.id)
        ):
            if message.state in (MessageState.PENDING, MessageState.SENDING):
                # Its send's answer is not recorded yet, and recording it would overwrite what
                # the receipt says: held until then, as a receipt that overtook its provider id.
                pending = _new_event(event, installation, integration.id, request_id, now, users=())
                routed.held.append(
                    HeldReceipt(
                        id=new_id(),
                        integration_id=integration.id,
                        provider_message_id=our_id_key(message.id),
                        event=pending,
                        held_at=now,
                        release_at=now + self._held_receipts.wait,
                    )
                )
                return True
            _add_receipt(routed, event, message, request_id, now)
            return True
        owner = "installation" if installation is not None else "integration"
        shown = our_id if len(our_id) <= _MAX_SHOWN_ID else our_id[:_MAX_SHOWN_ID] + "…"
        routed.problems.append(
            f"a {event.type.value} receipt matched model {event.model} and names our message id "
            f"{shown!r}, which is no message sent through this {owner}"
        )
        return False

    # --- replay ---------------------------------------------------------------------------------

    async def replay(self, request_id: str) -> ReplayResult:
        record = await self._store.get_webhook_request(request_id)
        if record is None or record.outcome is WebhookOutcome.MATCHED:
            raise NotFound(f"no unmatched webhook {request_id!r}", reason="WEBHOOK_NOT_FOUND")
        integration = await self._catalog.get(record.integration_id)
        installation = (
            await self._store.get_installation(record.installation_id)
            if record.installation_id
            else None
        )
        request = WebhookRequest(
            method=record.method,
            content_type=record.content_type or None,
            body=record.body,
            query=tuple(parse_qsl(record.query, keep_blank_values=True)),
            headers=record.headers,
        )
        try:
            result = await _match(integration.definition, request)
        except WebhookParseError as exc:
            return ReplayResult(events=(), reason=f"the body cannot be parsed: {exc}")
        now = datetime.now(UTC)
        routed = await self._route(integration, installation, result, record.id, now)
        events, holds = self._hold_media(routed.events, now)
        outcome = await self._store.mark_replayed(
            record.id,
            outcome=_outcome(routed),
            reason="; ".join(routed.problems)[:_MAX_REASON],
            events=events,
            transitions=routed.transitions,
            held=routed.held,
            media_holds=holds,
        )
        if routed.held:
            self._held_receipts.remember(routed.held)
        if holds and self._media is not None:
            self._media.wake()
        if outcome.events:
            self._hub.notify()
        return ReplayResult(events=tuple(outcome.events), reason="; ".join(routed.problems))


def _owner_id(routed: _Routed) -> str | None:
    """The installation that owns the request's first event, if any does."""
    for event in (*routed.events, *(h.event for h in routed.held)):
        if event.installation_id:
            return event.installation_id
    return None


async def _match(definition: Definition, request: WebhookRequest) -> MatchResult:
    """:func:`match_webhook`, without holding the event loop for more than a few milliseconds."""
    if _inline(request):
        return match_webhook(definition, request)
    return await off_loop(match_webhook, definition, request)


async def _handshake_of(definition: Definition, request: WebhookRequest) -> HandshakeMatch | None:
    """(ext) :func:`match_handshake` (it parses the body too), off the loop as :func:`_match`."""
    if _inline(request):
        return match_handshake(definition, request)
    return await off_loop(match_handshake, definition, request)


def _inline(request: WebhookRequest) -> bool:
    """Whether parsing and matching ``request`` is sure to be quick enough for the event loop."""
    body = request.body
    return (
        len(body) <= _INLINE_MAX_BYTES
        and body.count(b",") <= _INLINE_MAX_COMMAS
        and body.count(b"<") <= _INLINE_MAX_TAGS
    )


def _our_id(event: InboundEvent) -> str | None:
    """The ``$gateway_id$`` capture of a receipt: our id of the message, sent back (ext)."""
    value = event.captures.get("gateway_id")
    if isinstance(value, tuple):
        value = value[0] if value else None
    return (value.strip() or None) if isinstance(value, str) else None


def _outcome(routed: _Routed) -> WebhookOutcome:
    if routed.unmatched:
        return WebhookOutcome.UNMATCHED
    if routed.unroutable:
        return WebhookOutcome.UNROUTABLE
    return WebhookOutcome.MATCHED


def _dedupe_key(owner: str, event: InboundEvent) -> str | None:
    if not event.provider_message_id:
        return None  # without a provider id nothing is a duplicate (docs/format.md, "Duplicates")
    key = f"{owner}|{event.event_key}|{event.type.value}|{event.provider_message_id}"
    if event.type is EventType.MESSAGE_STATUS:
        # One message passes through several statuses: each is its own event, a retry of one
        # is not (docs/format.md, "Duplicates").
        key += f"|{_short(event.status or '')}"
    return key


def _short(text: str) -> str:
    """``text``, or its digest when long: a key stays small whatever a provider sends."""
    if len(text) <= _MAX_KEY_PART:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _receipt_dedupe_key(integration_id: str, event: InboundEvent) -> str | None:
    # A receipt may first be held (its message unknown) and, retried, be routed to the message:
    # both must give one key, so receipts are keyed by integration, not by installation.
    return _dedupe_key(f"integration:{integration_id}", event)


def event_dedupe_key(event: InboundEvent, integration_id: str, owner: str) -> str | None:
    """The key that makes a repeat of ``event`` a duplicate (docs/format.md, "Duplicates"):
    a receipt's by integration, another event's by ``owner`` (its installation, or the
    integration when none is known); None when nothing can repeat it."""
    if event.type.is_delivery:
        return _receipt_dedupe_key(integration_id, event)
    return _dedupe_key(owner, event)


def _new_event(
    event: InboundEvent,
    installation: InstallationRecord | None,
    integration_id: str,
    request_id: str,
    now: datetime,
    *,
    users: tuple[str, ...],
) -> NewEvent:
    dedupe_key = event_dedupe_key(
        event, integration_id, installation.id if installation else integration_id
    )
    return NewEvent(
        type=event.type.value,
        org_id=installation.org_id if installation else "",
        installation_id=installation.id if installation else "",
        integration_id=integration_id,
        users=users,
        from_number=event.from_number or "",
        to_number=event.to_number or "",
        text=event.text or "",
        media_urls=event.media_urls,
        provider_message_id=event.provider_message_id or "",
        message_id="",
        status=event.status or "",
        error=event.error or "",
        metadata={},
        received_at=now,
        request_id=request_id,
        dedupe_key=dedupe_key,
        fields=event.fields,
    )


def _add_receipt(
    routed: _Routed, event: InboundEvent, message: MessageRecord, request_id: str, now: datetime
) -> None:
    """A receipt for ``message``: its event, and the state it moves the message to (if any)."""
    routed.events.append(_receipt_event(event, message, request_id, now))
    transition = transition_for(event.type.value, message, event.error, event.provider_message_id)
    if transition is not None:
        routed.transitions.append(transition)


def _receipt_event(
    event: InboundEvent, message: MessageRecord, request_id: str, now: datetime
) -> NewEvent:
    return NewEvent(
        type=event.type.value,
        org_id=message.org_id,
        installation_id=message.installation_id,
        integration_id=message.integration_id,
        users=(),
        from_number=event.from_number or message.from_number,
        to_number=event.to_number or message.to_number,
        text="",
        media_urls=(),
        provider_message_id=event.provider_message_id or "",
        message_id=message.id,
        status=event.status or "",
        error=event.error or "",
        metadata=dict(message.metadata),
        received_at=now,
        request_id=request_id,
        dedupe_key=_receipt_dedupe_key(message.integration_id, event),
        fields=event.fields,
    )
