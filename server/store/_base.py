"""The store's interface: the :class:`Store` protocol, the records it keeps and its errors.

Every implementation (SQLite, PostgreSQL) satisfies the same protocol and passes the same
tests (``tests/store``). Records are immutable values; the store never interprets a definition's
JSON, never encrypts or decrypts (the service encrypts secret property values before they arrive)
and never normalises numbers (the service does: docs/format.md, "Numbers") — it keeps what it is
given and enforces the few invariants that need a database: versions, number ownership and
idempotency keys.

Times are timezone-aware UTC datetimes, kept to the microsecond.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from ._exchanges import ProviderExchange
    from ._media import MediaHold, MediaRecord
    from ._queue import ClaimOutcome, OptOutRecord, RateSlot

__all__ = [
    "UNSET",
    "WAITING_STATES",
    "AttemptRecord",
    "Conflict",
    "EventFilter",
    "EventMedia",
    "EventRecord",
    "HeldReceipt",
    "InboundEventType",
    "IngestOutcome",
    "InstallationRecord",
    "IntegrationRecord",
    "MessageKind",
    "MessageRecord",
    "MessageState",
    "MessageTransition",
    "NewEvent",
    "NumberAssignment",
    "NumberTaken",
    "RecordNotFound",
    "Store",
    "StoreClosed",
    "StoreError",
    "Unset",
    "WebhookOutcome",
    "WebhookRequestRecord",
]


# ---------------------------------------------------------------------------------------------
# Errors


class StoreError(Exception):
    """Base of every error a store raises; database driver errors are wrapped in it."""


class StoreClosed(StoreError):
    """The store is not open (never opened, or closed)."""


class RecordNotFound(StoreError):
    """The record to update does not exist."""

    def __init__(self, kind: str, record_id: str) -> None:
        self.kind = kind
        self.record_id = record_id
        super().__init__(f"{kind} {record_id!r} not found")


class Conflict(StoreError):
    """A record with this identity already exists (an id or a webhook token hash in use)."""


class NumberTaken(StoreError):
    """A number is already held by an enabled installation of the same integration
    (docs/format.md, "Numbers").

    ``installation_id`` is the holder's id. It is the installation's own id when one record assigns
    the same (normalised) number twice.
    """

    def __init__(self, number: str, installation_id: str) -> None:
        self.number = number
        self.installation_id = installation_id
        super().__init__(f"number {number!r} is held by installation {installation_id!r}")


# ---------------------------------------------------------------------------------------------
# Records


class MessageKind(enum.StrEnum):
    SMS = "sms"
    MMS = "mms"


class MessageState(enum.StrEnum):
    """A sent message's state; the same as ``msgbridge.v1.Message.State`` (docs/delivery.md).

    ``queued``: waiting its turn (send time, rate, retry, an earlier message of its
    conversation); ``sending``: leased to a process that is calling the provider; ``sent``:
    accepted by the provider; ``delivered``: a delivery receipt said so; ``failed``: refused by
    the provider, retries exhausted, an unknown outcome, or a failure receipt; ``cancelled``:
    cancelled while queued. ``pending`` is the state of messages recorded before the queue
    existed (recorded, provider not answered yet).
    """

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    QUEUED = "queued"
    SENDING = "sending"
    CANCELLED = "cancelled"


#: The states of a message still in the queue: it holds later messages of its conversation back.
WAITING_STATES: Final = frozenset({MessageState.QUEUED, MessageState.SENDING})


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptRecord:
    """One provider call made for a message (docs/delivery.md, "Retries")."""

    number: int
    started_at: datetime
    ended_at: datetime
    provider_status: int | None = None
    reason: str = ""
    error: str = ""
    retry_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class IntegrationRecord:
    """One stored version of an integration definition (versions count 1, 2, … per id)."""

    id: str
    version: int
    definition_json: str
    created_at: datetime
    deleted: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class NumberAssignment:
    """A number of an installation and the users (extensions) it is assigned to.

    ``number`` is the normalised form the store compares (E.164 where parseable, a short code's
    digits, a name such as an alphanumeric sender id verbatim; docs/format.md, "Numbers");
    ``given`` is what the operator wrote.
    """

    number: str
    given: str
    users: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class InstallationRecord:
    """An integration enabled for one organisation.

    ``properties`` hold values as the service gives them (secret ones already encrypted).
    ``subscription_state`` is one of ``not_required``, ``pending``, ``subscribed``, ``failed``
    (``msgbridge.v1.Subscription.State``); the store does not check it.
    """

    id: str
    org_id: str
    integration_id: str
    properties: Mapping[str, str]
    numbers: tuple[NumberAssignment, ...]
    default_region: str | None
    enabled: bool
    webhook_token_hash: str
    subscription_state: str
    subscription_error: str | None
    created_at: datetime
    updated_at: datetime
    # The installation's send limits as JSON (docs/delivery.md, "Limits"), interpreted by the
    # service: "" when it has none of its own.
    send_limits_json: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageRecord:
    """A message sent through the gateway.

    ``idempotency_key`` is unique per organisation; ``request_fingerprint`` is what the service
    compares to tell a repeat from a different request with the same key; ``reply_json`` is the
    reply stored so that a repeat returns exactly it.
    """

    id: str
    org_id: str
    installation_id: str
    integration_id: str
    kind: MessageKind
    from_number: str
    to_number: str
    text: str
    media_url: str | None
    state: MessageState
    provider_message_id: str | None
    provider_status: int | None
    attempts: int
    error: str | None
    metadata: Mapping[str, str]
    idempotency_key: str | None
    request_fingerprint: str | None
    reply_json: str | None
    created_at: datetime
    updated_at: datetime
    # (ext) docs/format.md, "Several requests per send": every request's provider id in order
    # ("" for a request whose answer had none) when the send made several; empty for a send of
    # one request, whose id is ``provider_message_id``.
    provider_message_ids: tuple[str, ...] = ()
    # The delivery pipeline (docs/delivery.md): the text's encoding and SMS segments; a
    # scheduled send's time; when a queued message is next tried; whether it keeps its place in
    # its conversation (from, to); whether its outcome is to be published as an event (the
    # caller was replied before it was known); the process holding it while ``sending`` and
    # until when; and its attempts.
    encoding: str = ""
    segments: int = 0
    send_at: datetime | None = None
    next_attempt_at: datetime | None = None
    ordered: bool = True
    notify: bool = False
    lease_owner: str | None = None
    lease_until: datetime | None = None
    attempt_log: tuple[AttemptRecord, ...] = ()
    # What the service needs to send it later that has no column of its own (JSON it reads).
    request_json: str | None = None

    @property
    def provider_ids(self) -> tuple[str, ...]:
        """Every request's provider id in order: ``provider_message_ids``, or the one id."""
        if self.provider_message_ids:
            return self.provider_message_ids
        return (self.provider_message_id,) if self.provider_message_id else ()


# --- the inbound path: webhook requests, events, receipts -------------------------------------


class WebhookOutcome(enum.StrEnum):
    """What became of a webhook request."""

    MATCHED = "matched"
    """Every payload matched a model and every event found its owner (duplicates included)."""
    UNMATCHED = "unmatched"
    """A payload matched no model (docs/format.md, "Unmatched payloads"); kept, listable,
    replayable."""
    UNROUTABLE = "unroutable"
    """Matched, but no enabled installation (or sent message) owns an event
    (docs/format.md, "Numbers and routing", "Receipts")."""
    UNAUTHENTICATED = "unauthenticated"
    """It failed the definition's WebhookAuth check (docs/format.md, "WebhookAuth"); no event
    came from it."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookRequestRecord:
    """A webhook request as it was received, kept for audit and replay.

    ``path`` is stored WITHOUT the installation token (``/webhooks/acme`` or ``/webhooks/acme/…``),
    so nothing kept can be used to post as the installation. ``headers`` keep their order and
    repeats. ``reason`` is ``""`` for a matched request. ``replayed_at`` is set by
    :meth:`Store.mark_replayed`.

    Kept as the provider exchange log keeps a call (docs/operations.md, "Webhook requests"):
    credential headers and every known secret value are masked (``***``) before the record is
    made; ``answer_status`` and ``answer_body`` (capped) are what the gateway answered, and
    ``duration_ms`` how long it took from receipt to that answer, the store write excluded. A
    row written before these were kept has ``0``, ``""`` and ``0.0``.
    """

    id: str
    received_at: datetime
    integration_id: str
    installation_id: str | None
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str
    outcome: WebhookOutcome
    reason: str
    replayed_at: datetime | None = None
    answer_status: int = 0
    answer_body: str = ""
    duration_ms: float = 0.0


class InboundEventType(enum.StrEnum):
    """The event types of the format (``NewEvent.type`` holds these values as plain text).

    Named so as not to clash with the engine's ``EventType`` (the same names, as they appear in a
    definition). The store reads the type in one place only: a held receipt's type decides the
    transition :meth:`Store.correlate_held` applies (see there).
    """

    MESSAGE = "message"
    MMS = "mms"
    MESSAGE_DELIVERED = "messageDelivered"
    MESSAGE_FAILED = "messageFailed"
    MESSAGE_SENT = "messageSent"
    # docs/format.md, "More event types": none of these changes a message's state.
    OPTED_OUT = "optedOut"
    OPTED_IN = "optedIn"
    MESSAGE_READ = "messageRead"
    MESSAGE_STATUS = "messageStatus"
    # docs/format.md, "Conversation signals": about a conversation, no message of ours.
    TYPING = "typing"
    CONVERSATION_STARTED = "conversationStarted"
    MESSAGE_DELETED = "messageDeleted"


@dataclass(frozen=True, kw_only=True, slots=True)
class EventMedia:
    """A file of an inbound message as the gateway fetched and kept it (docs/media.md).

    ``original_url`` is the URL the provider gave. A stored file has its ``media_id`` (a
    :class:`~server.store._media.MediaRecord`), ``content_type`` (sniffed from the bytes),
    ``size`` and ``sha256`` (hex); a file that could not be fetched or kept has ``error`` (why)
    and no ``media_id``.
    """

    original_url: str
    media_id: str = ""
    content_type: str = ""
    size: int = 0
    sha256: str = ""
    error: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class NewEvent:
    """An event to append to the event log (it has no cursor yet).

    ``type`` is the format's name (:class:`InboundEventType` values). ``message_id`` is ours, on a
    receipt correlated to a message we sent, else ``""``; ``metadata`` is that send's caller
    metadata (receipts), else empty. ``request_id`` is the :class:`WebhookRequestRecord` the event
    came from. ``dedupe_key`` (docs/format.md, "Duplicates": installation, or for a receipt its
    integration | event_key | type | provider message id) makes a second event with the same key
    a duplicate, whenever it arrives, until the key is purged; ``None``: never a duplicate.
    ``fields`` are the event's extra fields: the captures its webhook model keeps beside the
    event's own fields (docs/format.md, "Extra fields"), bounded by the matcher; not ``metadata``.
    """

    type: str
    org_id: str
    installation_id: str
    integration_id: str
    users: tuple[str, ...]
    from_number: str
    to_number: str
    text: str
    media_urls: tuple[str, ...]
    provider_message_id: str
    message_id: str
    status: str
    error: str
    metadata: Mapping[str, str]
    received_at: datetime
    request_id: str
    dedupe_key: str | None
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The message's files as kept (docs/media.md), in the order of ``media_urls``; empty when
    #: media fetching is off or the event has no files.
    media: tuple[EventMedia, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRecord(NewEvent):
    """A stored event: a :class:`NewEvent` and its cursor.

    Cursors increase in the order events are committed and are never reused, even after a purge
    (see :meth:`Store.read_events` for the no-gap guarantee).
    """

    cursor: int

    @classmethod
    def appended(cls, event: NewEvent, cursor: int) -> EventRecord:
        """``event`` as stored under ``cursor`` (its collections made immutable)."""
        metadata = event.metadata
        return cls(
            type=event.type,
            org_id=event.org_id,
            installation_id=event.installation_id,
            integration_id=event.integration_id,
            users=tuple(event.users),
            from_number=event.from_number,
            to_number=event.to_number,
            text=event.text,
            media_urls=tuple(event.media_urls),
            provider_message_id=event.provider_message_id,
            message_id=event.message_id,
            status=event.status,
            error=event.error,
            metadata=(
                metadata
                if isinstance(metadata, MappingProxyType)
                else MappingProxyType(dict(metadata))
            ),
            received_at=event.received_at,
            request_id=event.request_id,
            dedupe_key=event.dedupe_key,
            fields=(
                event.fields
                if isinstance(event.fields, MappingProxyType)
                else MappingProxyType(dict(event.fields))
            ),
            media=tuple(event.media),
            cursor=cursor,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageTransition:
    """A receipt's effect on a message we sent: move it to ``state``, with ``error``.

    Terminal states are sticky (see :meth:`Store.ingest`): DELIVERED and FAILED only change a
    ``pending`` or ``sent`` message; SENT only changes a ``pending`` one. Both backends take this
    rule from one table, :data:`server.store._transitions.ALLOWED_FROM`.
    """

    message_id: str
    state: MessageState
    error: str | None = None
    # (ext) The provider id of the part the receipt is about, for a message of several parts
    # (docs/format.md, "Several requests per send"): that part moves by the rule above, and the
    # message to the state its parts make (:data:`server.store._transitions.PARTS_RULE`). None
    # for a message of one request.
    part: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class HeldReceipt:
    """A receipt whose provider message id matched no message yet (docs/format.md,
    "Receipts").

    ``event`` is the receipt's event as it would be appended without a message: ``message_id``
    ``""``, ``metadata`` empty, and ``installation_id``/``org_id`` ``""`` when it came through the
    per-integration URL. Its ``dedupe_key`` is taken when the receipt is held (so a retried
    receipt is not held twice, nor appended once its message is known). ``release_at`` is
    ``held_at + receipt_wait``.
    """

    id: str
    integration_id: str
    provider_message_id: str
    event: NewEvent
    held_at: datetime
    release_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestOutcome:
    """What an ingest appended: the new events in cursor order, and how many were duplicates
    (events and held receipts skipped because their dedupe key was already taken)."""

    events: tuple[EventRecord, ...]
    duplicates: int


@dataclass(frozen=True, kw_only=True, slots=True)
class EventFilter:
    """Which events a reader wants: every given field must match; ``types`` empty means all.

    ``orgs`` (None: any) is the set of organisations a caller scoped to organisations may see,
    applied on top of ``org_id``.
    """

    org_id: str | None = None
    integration_id: str | None = None
    types: frozenset[str] = frozenset()
    orgs: frozenset[str] | None = None

    def matches(self, event: NewEvent) -> bool:
        """The same test the store applies in :meth:`Store.read_events`."""
        return (
            (self.org_id is None or event.org_id == self.org_id)
            and (self.orgs is None or event.org_id in self.orgs)
            and (self.integration_id is None or event.integration_id == self.integration_id)
            and (not self.types or event.type in self.types)
        )


class Unset(enum.Enum):
    """The type of :data:`UNSET`: "leave this field as it is" in an update."""

    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


# ---------------------------------------------------------------------------------------------
# The interface


class Store(Protocol):
    """What the service needs from a database. Every method is a coroutine.

    Reads return ``None`` (or an empty tuple) when nothing matches; writes raise
    :class:`RecordNotFound` when the record to change does not exist. Every error is a
    :class:`StoreError`. A write whose awaiting caller is cancelled may still complete.
    """

    async def start(self) -> None:
        """Connect and apply pending schema migrations."""

    async def aclose(self) -> None:
        """Finish queued writes and release connections. Idempotent."""

    # --- integrations -----------------------------------------------------------------------

    async def put_integration(
        self, integration_id: str, definition_json: str, *, created_at: datetime | None = None
    ) -> IntegrationRecord:
        """Store a new version of an integration (1 for a new id, else the highest + 1)."""
        ...

    async def get_integration(
        self, integration_id: str, version: int | None = None
    ) -> IntegrationRecord | None:
        """A version of an integration (the latest when ``version`` is None); deleted: None."""
        ...

    async def list_integrations(
        self, *, after: str | None = None, limit: int | None = None
    ) -> tuple[IntegrationRecord, ...]:
        """The latest version of every integration not deleted, ordered by id: those whose id
        is after ``after`` (the last of a previous page), at most ``limit`` (None: all)."""
        ...

    async def delete_integration(self, integration_id: str) -> bool:
        """Mark every version of an integration deleted; False when there was none to delete.

        Registering the id again afterwards creates the next version number, not deleted.
        """
        ...

    # --- installations ----------------------------------------------------------------------

    async def create_installation(self, record: InstallationRecord) -> InstallationRecord:
        """Insert an installation with its numbers, atomically.

        Raises :class:`NumberTaken` when ``record.enabled`` and an enabled installation of the
        same integration holds one of its numbers, :class:`Conflict` when the id or the token
        hash is in use.
        """
        ...

    async def update_installation(self, record: InstallationRecord) -> InstallationRecord:
        """Replace an installation (every field but ``id`` and ``created_at``) and its numbers.

        Same checks as :meth:`create_installation`; a disabled installation holds no number.
        Raises :class:`RecordNotFound` when it does not exist.
        """
        ...

    async def get_installation(self, installation_id: str) -> InstallationRecord | None: ...

    async def list_installations(
        self,
        *,
        org_id: str | None = None,
        integration_id: str | None = None,
        org_ids: frozenset[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> tuple[InstallationRecord, ...]:
        """Installations (enabled or not) filtered by what is given (``org_ids``: of one of these
        organisations), oldest first (``created_at``, then id); ``after`` is the ``(created_at,
        id)`` of the last one of a previous page; at most ``limit`` returned (None: all). A page
        is read from an index in this order, whatever the number of installations."""
        ...

    async def find_installation_by_number(
        self, integration_id: str, number: str
    ) -> InstallationRecord | None:
        """The enabled installation of this integration holding this normalised number."""
        ...

    async def find_installation_by_token_hash(
        self, integration_id: str, token_hash: str
    ) -> InstallationRecord | None:
        """The installation (enabled or not — the caller checks) with this webhook token hash."""
        ...

    async def count_installations(
        self, integration_id: str, *, enabled_only: bool = True
    ) -> int: ...

    # --- messages ---------------------------------------------------------------------------

    async def claim_message(self, record: MessageRecord) -> tuple[MessageRecord, bool]:
        """Insert a message, or return the one already holding its idempotency key.

        Returns ``(record, True)`` when inserted, ``(existing, False)`` when a message of the same
        organisation already has ``record.idempotency_key`` (decided atomically by a unique key).
        Without an idempotency key it is a plain insert. Raises :class:`Conflict` when the id is
        in use.
        """
        ...

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
        provider_message_ids: Sequence[str] | Unset = UNSET,
    ) -> MessageRecord:
        """Change the given fields (``UNSET`` ones are kept) and ``updated_at`` (now when None).

        ``provider_message_ids`` (a send of several requests: every request's provider id in
        order, "" where an answer had none) is kept on the message and, in the same transaction,
        each non-empty id becomes a part in state ``sent``, by which a receipt finds the message
        (:meth:`find_message_by_provider_id`). Given once per message.

        Returns the updated record; raises :class:`RecordNotFound` when there is no such message.
        """
        ...

    async def get_message(self, message_id: str) -> MessageRecord | None: ...

    async def find_message_by_provider_id(
        self, integration_id: str, provider_message_id: str
    ) -> MessageRecord | None:
        """The message of this integration with this provider id (the newest if several): its
        ``provider_message_id``, else the id of one of its parts."""
        ...

    # --- the send queue (docs/delivery.md) ------------------------------------------------------

    async def enqueue_message(
        self,
        record: MessageRecord,
        *,
        claim: tuple[str, datetime, Sequence[RateSlot]] | None = None,
        now: datetime,
        max_queued: int = 0,
        opt_out: tuple[str, str] | None = None,
    ) -> tuple[MessageRecord, bool]:
        """Record a new message, or return the one already holding its idempotency key, in ONE
        transaction.

        The conversation rule everywhere: a message's place in its conversation is its
        ``send_at``, else its ``created_at`` (ties: ``created_at``, then id); an ordered message
        waits while an earlier *ordered* message of its conversation is ``queued`` or
        ``sending``; an unordered one neither waits nor holds others back.

        As :meth:`claim_message` for the key: ``(existing, False)`` when a message of the same
        organisation holds ``record.idempotency_key`` (nothing else is checked or changed).
        Otherwise, in order: :class:`OptedOut` when ``(installation_id, *opt_out)`` —
        ``opt_out`` defaults to the record's ``(from_number, to_number)`` — is an opt-out; then,
        when ``claim`` — ``(owner, lease_until, rates)`` — is given and the message may leave at
        ``now`` (it is due: no ``send_at`` after ``now``; it is unordered or no earlier ordered
        message of its conversation is ``queued`` or ``sending``; every rate has a slot), it is
        inserted ``sending``, leased to ``owner`` until ``lease_until``, and the rates' slots
        are taken (a record given already so is returned as it is); else it is inserted
        ``queued`` (``next_attempt_at`` its ``send_at`` or
        ``now``), unless ``max_queued`` > 0 and the installation already has that many
        ``queued`` messages: :class:`QueueFull`.
        Returns ``(stored, True)``; ``stored.state`` says which.
        """
        ...

    async def due_messages(self, now: datetime, *, limit: int) -> tuple[MessageRecord, ...]:
        """Up to ``limit`` ``queued`` messages whose ``next_attempt_at`` is at or before ``now``
        and that may leave in their conversation's order (unordered, or no earlier message of
        the conversation is ``queued`` or ``sending``) — a message's place in its conversation
        is its ``send_at``, else its ``created_at`` — with installations in turn: the oldest
        (``created_at``, then id) of each installation, then the second oldest of each, and so
        on, so that one installation's backlog cannot keep another's messages out."""
        ...

    async def next_due_at(self) -> datetime | None:
        """The earliest ``next_attempt_at`` of a ``queued`` message, or None when none waits."""
        ...

    async def claim_queued(
        self,
        message_id: str,
        *,
        owner: str,
        lease_until: datetime,
        rates: Sequence[RateSlot],
        now: datetime,
    ) -> ClaimOutcome:
        """In ONE transaction: when the message is ``queued``, due at ``now``, first of its
        conversation (as in :meth:`due_messages`) and every rate has a slot, take the slots
        and make it ``sending``, leased to ``owner`` until ``lease_until``. A rate without a
        slot changes nothing and says when it will have one. Of several claims at once (on any
        replicas) at most one succeeds."""
        ...

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
        outcome_event: NewEvent | Callable[[], NewEvent] | None = None,
        now: datetime,
    ) -> tuple[MessageRecord | None, EventRecord | None]:
        """End an attempt of a message leased to ``owner`` (None: a ``sending`` message under
        any lease, for a lease that expired), in ONE transaction: set ``state`` (``sent``,
        ``failed``, or ``queued`` again with ``next_attempt_at`` for a retry) — unless a receipt
        already moved it to ``delivered`` or ``failed`` while it was sending (its state stays;
        the rest is set) — the given fields, ``attempts``, clear the lease, and append
        ``attempt`` to the attempt log (the last 20 kept).
        ``provider_message_ids`` makes parts as :meth:`update_message` does. When the message
        asked for its outcome to be published (``notify``) and ``state`` is ``sent`` or
        ``failed``, ``outcome_event`` is appended to the event log in the same transaction and
        returned (a function giving the event is called only then: most messages publish none).
        Returns ``(None, None)`` and changes nothing when the message is not ``sending`` under
        that lease (another process took it over).

        ``message`` is the message as the caller holds it (as claimed): what no attempt changes
        is taken from it, and only what something else may have changed meanwhile (a receipt, a
        caller asking for its outcome: ``FINISHED_COLUMNS``) is read back — unless the stored
        attempt log holds attempts the copy does not, when the message is read whole.
        :class:`RecordNotFound` when no message has its id."""
        ...

    async def expired_leases(self, now: datetime, *, limit: int) -> tuple[MessageRecord, ...]:
        """Up to ``limit`` ``sending`` messages whose lease ended before ``now`` (their process
        stopped while calling the provider), oldest lease first."""
        ...

    async def request_outcome(self, message_id: str) -> MessageRecord:
        """Mark a ``queued`` or ``sending`` message to publish its outcome as an event (its
        caller was replied before it was known); return the message as it is — when it already
        has an outcome, nothing is marked and the caller has it. :class:`RecordNotFound` when
        unknown."""
        ...

    async def requeue_message(self, message_id: str, *, now: datetime) -> MessageRecord | None:
        """Put a ``failed`` message without a stored reply (a failure that sent nothing
        released its idempotency key) back in the queue as ``queued``, due at ``now``, for a
        repeat of its key; None when it is not such a message."""
        ...

    async def cancel_message(self, message_id: str, *, now: datetime) -> tuple[MessageRecord, bool]:
        """Make a ``queued`` message ``cancelled``; return it and whether it was cancelled
        (False: it was not queued, and is returned as it is). :class:`RecordNotFound` when
        unknown."""
        ...

    async def list_messages(
        self,
        *,
        org_ids: frozenset[str] | None = None,
        installation_id: str | None = None,
        states: frozenset[MessageState] = frozenset(),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> tuple[MessageRecord, ...]:
        """Messages that match (None or empty: any), newest first (``created_at``, then id,
        descending); ``after`` is the ``(created_at, id)`` of the last one of a previous page."""
        ...

    async def count_queued(self, installation_id: str) -> int:
        """How many ``queued`` messages the installation has."""
        ...

    async def queue_depth(self) -> int:
        """How many ``queued`` messages there are, of every installation (the metrics read it at
        each scrape: docs/operations.md, "Metrics")."""
        ...

    # --- opt-outs (docs/delivery.md, "Opt-outs") -------------------------------------------------

    async def record_opt_out(self, record: OptOutRecord) -> None:
        """Keep an opt-out (an existing one for the same installation, from and to stays as it
        is)."""
        ...

    async def clear_opt_out(self, installation_id: str, from_number: str, to_number: str) -> bool:
        """Remove an opt-out; False when there was none."""
        ...

    async def list_opt_outs(
        self,
        *,
        org_ids: frozenset[str] | None = None,
        installation_id: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        after: tuple[datetime, str, str, str] | None = None,
        limit: int = 100,
    ) -> tuple[OptOutRecord, ...]:
        """Opt-outs that match (None: any), newest first (``created_at``, installation, from,
        to, descending); ``after`` is the last one of a previous page as that tuple."""
        ...

    # --- installations: subscription state ----------------------------------------------------

    async def set_subscription(
        self, installation_id: str, *, state: str, error: str | None
    ) -> None:
        """Set ``subscription_state`` and ``subscription_error`` of an installation.

        Touches no other column (not ``updated_at`` either), so it never races with an operator's
        :meth:`update_installation`. Raises :class:`RecordNotFound` when there is no such
        installation.
        """
        ...

    # --- installations: values kept beside the record ---------------------------------------

    async def put_installation_value(self, installation_id: str, name: str, value: str) -> None:
        """Set one named value of an installation (OAuth tokens, sealed by the caller; the
        authorization state), replacing any earlier one. Touches nothing else. Raises
        :class:`RecordNotFound` when there is no such installation."""
        ...

    async def get_installation_value(self, installation_id: str, name: str) -> str | None:
        """The named value of an installation, or None."""
        ...

    # --- coordination ----------------------------------------------------------------------

    def exclusive(self, name: str) -> AbstractAsyncContextManager[None]:
        """Held by one holder at a time across every process sharing the database (PostgreSQL:
        an advisory lock; SQLite, which one process owns: a lock in that process)."""
        ...

    # --- OAuth2 authorization states ------------------------------------------------------

    async def save_authorization_state(self, key: str, value: str, expires_at: datetime) -> None:
        """Keep a pending authorization (``value``, sealed by the caller) under ``key`` until
        ``expires_at``; states expired more than an hour ago are dropped on the way."""
        ...

    async def consume_authorization_state(self, key: str) -> tuple[str, bool] | None:
        """Atomically mark the state used; return ``(value, first_use)``, or None when unknown.
        Of two replicas consuming one state at once, exactly one sees ``first_use``."""
        ...

    # --- inbound: ingest --------------------------------------------------------------------

    async def ingest(
        self,
        request: WebhookRequestRecord,
        events: Sequence[NewEvent],
        transitions: Sequence[MessageTransition] = (),
        held: Sequence[HeldReceipt] = (),
        media_holds: Sequence[MediaHold] = (),
    ) -> IngestOutcome:
        """Store a webhook request with what came of it, in ONE transaction; return once committed.

        In order:

        1. insert ``request`` (:class:`Conflict` if its id is in use);
        2. for each event, in the given order: when ``dedupe_key`` is set, claim it in the dedupe
           keys (a unique key, claimed atomically, never check-then-insert; its time is the
           event's ``received_at``); if it was already claimed — by an earlier call, or by an
           earlier event or held receipt of this same call — skip the event and count a duplicate;
           otherwise append it and give it the next cursor. Events without a key are always
           appended;
        3. apply each transition, sticky: DELIVERED or FAILED sets ``state``, ``error`` (``None``
           clears it) and ``updated_at`` (the time of the call) only when the message is
           ``pending`` or ``sent``; SENT only when it is ``pending``. So a delivered or failed
           message never changes again and SENT never downgrades. A transition of an unknown
           message, or one the rule refuses, changes nothing and is not an error. Transitions
           apply whether or not the event they came with was a duplicate (they are idempotent);
        4. insert each held receipt, after claiming its event's ``dedupe_key`` exactly as in 2 (a
           duplicate is counted and not stored). :class:`Conflict` if a held receipt's id is in
           use;
        5. opt-outs (docs/delivery.md, "Opt-outs"), in event order: each appended (not duplicate)
           ``optedOut`` event with an ``installation_id`` records an opt-out as
           :meth:`record_opt_out` does — installation ``installation_id``, ``from_number`` the
           event's ``to_number`` (our sender), ``to_number`` the event's ``from_number`` (the
           recipient who opted out), ``org_id`` the event's, source ``inbound``, ``created_at``
           its ``received_at``; an existing one is kept — and each appended ``optedIn`` clears
           it. :meth:`mark_replayed` and :meth:`correlate_held` apply the same rule
           (``server/store/_opt_outs.py``);
        6. insert each media hold (docs/media.md), after claiming its event's ``dedupe_key``
           exactly as in 2 (a duplicate is counted and not stored). :class:`Conflict` if its id
           is in use.

        Any error rolls back everything: no request row, no event, no dedupe key, no transition,
        no opt-out.
        The returned ``events`` are the appended ones in cursor order (their ``metadata`` may be
        a read-only view); because the call returns only after the commit, waking stream readers
        after it is safe.
        """
        ...

    async def ingest_many(
        self, requests: Sequence[tuple[WebhookRequestRecord, Sequence[NewEvent]]]
    ) -> int:
        """The bulk path: store many webhook requests, each with its events, as :meth:`ingest`
        would one at a time (dedupe keys claimed, opt-outs recorded), in ONE transaction; the
        number of events appended. For loading a store with history (``make bench-grown``
        loads a million requests through it): nobody is woken, and a conflict anywhere rolls
        the whole call back."""
        ...

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
        """Record a replay of a kept request: like :meth:`ingest` (same dedupe, transitions,
        held receipts, media holds and opt-outs, one transaction), but instead of inserting a
        request it sets the existing one's ``outcome``, ``reason`` and ``replayed_at`` (now when
        None).

        Raises :class:`RecordNotFound` (and changes nothing) when there is no such request. Events
        of the replay that carry a dedupe key already claimed (by the first attempt or an earlier
        replay) are duplicates; events without a key are appended again.
        """
        ...

    async def get_webhook_request(self, request_id: str) -> WebhookRequestRecord | None: ...

    async def list_webhook_requests(
        self,
        *,
        outcomes: frozenset[WebhookOutcome],
        integration_id: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> tuple[WebhookRequestRecord, ...]:
        """Kept requests with one of ``outcomes`` (empty: any outcome) and of ``integration_id``
        (when given), newest ``received_at`` first (ties: greater id first); ``after`` is the
        ``(received_at, id)`` of the last one of a previous page; at most ``limit`` returned."""
        ...

    # --- inbound: messages held for their media (docs/media.md) -----------------------------

    async def due_media_holds(self, now: datetime, *, limit: int) -> tuple[MediaHold, ...]:
        """Up to ``limit`` holds whose ``next_attempt_at`` (never after ``release_by``) is ≤
        ``now`` and that no live lease covers, earliest ``next_attempt_at`` first. A read: the
        caller leases each with :meth:`lease_media_hold`."""
        ...

    async def next_media_hold_at(self) -> datetime | None:
        """The earliest ``next_attempt_at`` of any hold not leased, else of any lease's end;
        None when nothing is held."""
        ...

    async def lease_media_hold(
        self, hold_id: str, *, owner: str, lease_until: datetime, now: datetime
    ) -> MediaHold | None:
        """Lease a hold to ``owner`` until ``lease_until``, atomically, when it exists and no
        live lease (one ending after ``now``) covers it; else None. Of two callers at once,
        on any replica, one gets it."""
        ...

    async def update_media_hold(
        self,
        hold_id: str,
        *,
        owner: str,
        progress: Sequence[EventMedia],
        next_attempt_at: datetime,
    ) -> bool:
        """Keep ``progress``, count an attempt, set ``next_attempt_at`` and end the lease — only
        when ``owner`` still holds it; False (nothing changed) otherwise."""
        ...

    async def release_media_hold(
        self, hold_id: str, *, owner: str, media: Sequence[EventMedia]
    ) -> EventRecord | None:
        """In one transaction: delete the hold and append its event with ``media`` (its dedupe
        key was claimed when it was held: it is not checked again), giving it the next cursor.
        Only when ``owner`` holds the lease; None (nothing changed) otherwise."""
        ...

    async def put_media(self, record: MediaRecord) -> None:
        """Keep a stored file's record (:class:`Conflict` if its id is in use)."""
        ...

    async def get_media(self, media_id: str) -> MediaRecord | None: ...

    async def expired_media(self, before: datetime, *, limit: int) -> tuple[MediaRecord, ...]:
        """Up to ``limit`` media records created before ``before``, oldest first (retention:
        the caller deletes their blobs, then :meth:`delete_media`)."""
        ...

    async def delete_media(self, media_ids: Sequence[str]) -> int:
        """Delete these media records; how many existed."""
        ...

    # --- inbound: the event log -------------------------------------------------------------

    async def read_events(
        self, after_cursor: int, *, filter: EventFilter = EventFilter(), limit: int = 500
    ) -> tuple[EventRecord, ...]:
        """Up to ``limit`` kept events with ``cursor > after_cursor`` that ``filter`` matches, in
        cursor order.

        No gap: cursors are handed out in commit order, so once a read has returned an event
        with cursor N (or :meth:`latest_cursor` has returned N), no event with a cursor ≤ N is
        committed later. A reader that continues after the last cursor it saw misses nothing.
        (An implementation whose sequence is not in commit order — PostgreSQL's — must serialise
        appends, or hide not-yet-visible cursors, to keep this promise.)
        """
        ...

    async def latest_cursor(self) -> int:
        """The highest cursor ever given to an event, kept or purged; 0 before the first event.

        Every event committed so far has a cursor ≤ it and every later one a greater cursor: the
        position "from now". It never decreases, not even when a purge deletes every event.
        """
        ...

    async def consumer_frontiers(self) -> dict[str, int]:
        """Each durable consumer's frontier (the cursor after which it has handed nothing out),
        by name; the metrics read it at each scrape (docs/operations.md, "Metrics")."""
        ...

    async def earliest_cursor(self) -> int:
        """The cursor of the oldest kept event minus 1, so that reading after it returns that
        event; when no event is kept, :meth:`latest_cursor`. The position "from the earliest"."""
        ...

    # --- inbound: receipts that overtook their send's reply ---------------------------------

    async def correlate_held(
        self, integration_id: str, provider_message_id: str, message: MessageRecord
    ) -> IngestOutcome:
        """Complete the held receipts of ``(integration_id, provider_message_id)`` with
        ``message``, atomically.

        Takes every such held receipt (oldest ``held_at`` first, then by id), appends its event
        with ``message_id=message.id``, ``org_id`` and ``installation_id`` from the message and
        ``metadata=message.metadata`` (its dedupe key was claimed when it was held: it is not
        checked again), applies its transition to the message — by the event's type:
        ``messageDelivered`` → DELIVERED, ``messageFailed`` → FAILED with ``error`` the event's
        error (``None`` when empty), ``messageSent`` → SENT, any other type → none — sticky as in
        :meth:`ingest`, and deletes it. ``duplicates`` is 0. Nothing held: nothing happens.
        """
        ...

    async def release_held(self, now: datetime) -> tuple[HeldReceipt, ...]:
        """Take — delete and return, atomically — every held receipt with ``release_at <= now``,
        ordered by ``release_at`` then id. A receipt is returned by one call only, even when
        several run at once (or on several replicas); the caller then appends it or keeps its
        request as unroutable."""
        ...

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
        """Hand up to ``limit`` (≥ 1) events of a durable consumer to one of its subscribers,
        atomically, in cursor order, each leased until ``now + lease_s``.

        A consumer is a name shared by its subscribers: each event goes to one of them, and an
        event not acknowledged (:meth:`ack_events`) before its lease expires goes out again.

        1. A consumer not seen before is created with its frontier at ``start_after`` when given,
           else at :meth:`latest_cursor` ("from now"). For a known consumer ``start_after`` is
           ignored: it resumes.
        2. Leases of this consumer that expired (``lease_until <= now``, including released ones)
           are leased again to ``subscriber``, lowest cursor first — without applying ``filter``
           (the subscribers of one consumer are expected to share one filter). Leases whose event
           was purged are dropped, not returned.
        3. The rest of ``limit`` is filled with kept events after the frontier that ``filter``
           matches, and the frontier advances past them. Events the filter leaves out are skipped
           for good — they count as handed out and never block the frontier — so when fewer than
           the rest of ``limit`` match, the frontier moves to the latest cursor.

        Never hands out an event that is leased and unexpired, to anyone.
        """
        ...

    async def ack_events(self, consumer: str, cursors: Sequence[int]) -> int:
        """Acknowledge events of a consumer (by any of its subscribers): delete their leases.

        Returns how many leases were deleted; cursors not leased (already acknowledged, never
        handed out, another consumer's) are ignored. An acknowledged event never goes out again.
        """
        ...

    async def release_leases(self, consumer: str, subscriber: str) -> None:
        """A subscriber left: expire its unacknowledged leases at once, so the next
        :meth:`lease_events` of any subscriber of the consumer takes them."""
        ...

    # --- the provider exchange log (store/_exchanges.py) -------------------------------------

    async def record_exchanges(self, exchanges: Sequence[ProviderExchange]) -> None:
        """Keep ``exchanges`` (already masked), in one write; an id already kept is skipped."""
        ...

    async def list_exchanges(
        self, message_id: str, *, limit: int = 100
    ) -> tuple[ProviderExchange, ...]:
        """The first ``limit`` exchanges made for ``message_id``, oldest ``started_at`` first
        (ties: smaller id first)."""
        ...

    async def purge_exchanges(self, before: datetime) -> int:
        """Delete the exchanges started before ``before`` (in chunks, as :meth:`purge` may);
        returns how many were deleted."""
        ...

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
        """Delete what is older than each given time (None: keep all of that kind).

        Not one transaction: an implementation may delete in short chunks so that a large purge
        never holds up webhooks; a purge cut short leaves the rest for the next one.

        Returns the rows deleted per kind, every key present: ``events``, ``requests``,
        ``unmatched``, ``messages``, ``dedupe_keys``, ``leases``.

        - ``events_before``: events are purged as a prefix of the log — every event whose cursor
          is below that of the first event received at or after the time (all events when none
          is) — so what is kept has no holes. That event is looked for a chunk of the log's
          head at a time, as the chunk before is deleted: no statement reads more than a chunk,
          however many events are due. Retention wins over consumers: leases of purged
          events are deleted too (counted in ``leases``), and a consumer whose frontier is
          behind continues with the first kept event.
        - ``requests_before``: MATCHED webhook requests received before the time.
        - ``unmatched_before``: the other requests (unmatched, unroutable, unauthenticated) —
          kept for their own, usually longer, time so an operator can replay them.
        - ``messages_before``: messages created before the time.
        - ``dedupe_before``: dedupe keys claimed (their event's ``received_at``) before the time;
          a retry arriving after its key is purged is a new event again. Keep dedupe keys at
          least as long as a provider retries.

        Held receipts are not purged here: :meth:`release_held` takes them.
        """
        ...
