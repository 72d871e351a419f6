"""The store: integrations with versions, installations with their numbers, sent messages, and
the inbound path — webhook requests, the event log with durable consumers, held receipts.

One interface, :class:`Store` (a ``Protocol`` of coroutines), and its implementations:
:class:`SqliteStore` (the embedded default: one WAL database file in the data directory, one
writer thread that commits in batches). Schema migrations are versioned ``.sql`` files applied at
:meth:`Store.open`; see :mod:`server.store._sqlite` for how to add one.

Every error raised is a :class:`StoreError`: :class:`NumberTaken` when a number is already held
by an enabled installation of the integration, :class:`RecordNotFound` when a record to update
does not exist, :class:`Conflict` when an id is already in use, :class:`StoreClosed` when not
open.
"""

from ._base import (
    UNSET,
    Conflict,
    EventFilter,
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
from ._migrations import MigrationError
from ._postgres import PostgresStore
from ._sqlite import SqliteStore

__all__ = [
    "UNSET",
    "Conflict",
    "EventFilter",
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
    "MigrationError",
    "NewEvent",
    "NumberAssignment",
    "NumberTaken",
    "PostgresStore",
    "RecordNotFound",
    "SqliteStore",
    "Store",
    "StoreClosed",
    "StoreError",
    "Unset",
    "WebhookOutcome",
    "WebhookRequestRecord",
]
