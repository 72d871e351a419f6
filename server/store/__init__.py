"""The store: integrations with versions, installations with their numbers, sent messages, and
the inbound path — webhook requests, the event log with durable consumers, held receipts.

One interface, :class:`Store` (a ``Protocol`` of coroutines), and its implementations:
:class:`SqliteStore` (the embedded default: one WAL database file in the data directory, one
writer thread that commits in batches; package :mod:`server.store.sqlite`) and
:class:`PostgresStore` (an asyncpg pool, for several replicas on one database; package
:mod:`server.store.postgres`). Both map records to rows with :mod:`server.store._rows` and take
the message state rule from :mod:`server.store._transitions`. Schema migrations are versioned
``.sql`` files applied at :meth:`Store.start`; see :mod:`server.store.sqlite` for how to add one.

Every error raised is a :class:`StoreError`: :class:`NumberTaken` when a number is already held
by an enabled installation of the integration, :class:`RecordNotFound` when a record to update
does not exist, :class:`Conflict` when an id is already in use, :class:`StoreClosed` when not
open.
"""

from ._base import (
    UNSET,
    WAITING_STATES,
    AttemptRecord,
    Conflict,
    EventFilter,
    EventMedia,
    EventRecord,
    HeldReceipt,
    InboundEventType,
    IngestOutcome,
    InstallationRecord,
    IntegrationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    MessageTransition,
    NewEvent,
    NumberAssignment,
    NumberTaken,
    RecordNotFound,
    Store,
    StoreClosed,
    StoreError,
    Unset,
    WebhookOutcome,
    WebhookRequestRecord,
)
from ._exchanges import ExchangeKind, ProviderExchange
from ._media import MediaHold, MediaOrigin, MediaRecord
from ._migrations import MigrationError
from ._queue import ClaimOutcome, OptedOut, OptOutRecord, QueueFull, RateSlot
from ._transitions import RECEIPT_STATES, part_of
from .postgres import PostgresStore
from .sqlite import SqliteStore

__all__ = [
    "RECEIPT_STATES",
    "UNSET",
    "WAITING_STATES",
    "AttemptRecord",
    "ClaimOutcome",
    "Conflict",
    "EventFilter",
    "EventMedia",
    "EventRecord",
    "ExchangeKind",
    "HeldReceipt",
    "InboundEventType",
    "IngestOutcome",
    "InstallationRecord",
    "IntegrationRecord",
    "MediaHold",
    "MediaOrigin",
    "MediaRecord",
    "MessageKind",
    "MessageRecord",
    "MessageState",
    "MessageTransition",
    "MigrationError",
    "NewEvent",
    "NumberAssignment",
    "NumberTaken",
    "OptOutRecord",
    "OptedOut",
    "PostgresStore",
    "ProviderExchange",
    "QueueFull",
    "RateSlot",
    "RecordNotFound",
    "SqliteStore",
    "Store",
    "StoreClosed",
    "StoreError",
    "Unset",
    "WebhookOutcome",
    "WebhookRequestRecord",
    "part_of",
]
