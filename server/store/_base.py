"""The store's interface: the :class:`Store` protocol, the records it keeps and its errors.

Every implementation (SQLite now, PostgreSQL later) satisfies the same protocol and passes the same
tests (``tests/store``). Records are immutable values; the store never interprets a definition's
JSON, never encrypts or decrypts (the service encrypts secret property values before they arrive)
and never normalises numbers (the service does, spec §8) — it keeps what it is given and enforces
the few invariants that need a database: versions, number ownership and idempotency keys.

Times are timezone-aware UTC datetimes, kept to the microsecond.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

__all__ = [
    "UNSET",
    "Conflict",
    "InstallationRecord",
    "IntegrationRecord",
    "MessageKind",
    "MessageRecord",
    "MessageState",
    "NotFound",
    "NumberAssignment",
    "NumberTaken",
    "Store",
    "StoreClosed",
    "StoreError",
    "Unset",
]


# ---------------------------------------------------------------------------------------------
# Errors


class StoreError(Exception):
    """Base of every error a store raises; database driver errors are wrapped in it."""


class StoreClosed(StoreError):
    """The store is not open (never opened, or closed)."""


class NotFound(StoreError):
    """The record to update does not exist."""

    def __init__(self, kind: str, record_id: str) -> None:
        self.kind = kind
        self.record_id = record_id
        super().__init__(f"{kind} {record_id!r} not found")


class Conflict(StoreError):
    """A record with this identity already exists (an id or a webhook token hash in use)."""


class NumberTaken(StoreError):
    """A number is already held by an enabled installation of the same integration (spec §8).

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
    """A sent message's state; the same four as ``msgbridge.v1.Message.State``.

    ``pending``: recorded, the provider has not answered yet; ``sent``: accepted by the provider;
    ``delivered``: a delivery receipt said so; ``failed``: refused by the provider, or a failure
    receipt (an "undelivered" receipt is a failure here).
    """

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


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

    ``number`` is the normalised form the store compares (E.164 where parseable, spec §8);
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

    Reads return ``None`` (or an empty tuple) when nothing matches; writes raise :class:`NotFound`
    when the record to change does not exist. Every error is a :class:`StoreError`. A write whose
    awaiting caller is cancelled may still complete.
    """

    async def open(self) -> None:
        """Connect and apply pending schema migrations."""

    async def close(self) -> None:
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

    async def list_integrations(self) -> tuple[IntegrationRecord, ...]:
        """The latest version of every integration not deleted, ordered by id."""
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
        Raises :class:`NotFound` when it does not exist.
        """
        ...

    async def get_installation(self, installation_id: str) -> InstallationRecord | None: ...

    async def list_installations(
        self, *, org_id: str | None = None, integration_id: str | None = None
    ) -> tuple[InstallationRecord, ...]:
        """Installations (enabled or not) filtered by what is given, oldest first."""
        ...

    async def find_installation_by_number(
        self, integration_id: str, number: str
    ) -> InstallationRecord | None:
        """The enabled installation of this integration holding this normalised number."""
        ...

    async def find_installations_for_number(
        self, org_id: str, number: str
    ) -> tuple[InstallationRecord, ...]:
        """The enabled installations of this organisation (any integration) holding the number."""
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
    ) -> MessageRecord:
        """Change the given fields (``UNSET`` ones are kept) and ``updated_at`` (now when None).

        Returns the updated record; raises :class:`NotFound` when there is no such message.
        """
        ...

    async def get_message(self, message_id: str) -> MessageRecord | None: ...

    async def get_message_by_idempotency_key(
        self, org_id: str, idempotency_key: str
    ) -> MessageRecord | None: ...

    async def find_message_by_provider_id(
        self, integration_id: str, provider_message_id: str
    ) -> MessageRecord | None:
        """The message of this integration with this provider id (the newest if several)."""
        ...
