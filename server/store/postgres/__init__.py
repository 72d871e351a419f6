"""The PostgreSQL store: the same :class:`~server.store.Store` on an asyncpg connection pool.

Modules: ``_store`` (:class:`PostgresStore`), ``_inbound`` (its inbound-path methods),
``_queue`` (its send queue: conversation locks, cluster-wide rate slots), ``_media`` (media
records and media holds, docs/media.md),
``_batcher`` (concurrent ingests in one transaction), ``_listener`` (LISTEN/NOTIFY), ``_pool``
(the connection wrapper and error mapping), ``_migrate`` (migrations), ``_sql`` (statements).

For several msgbridge replicas on one database. Every method is one round of statements on a
pooled connection; a method that writes more than one row runs them in one transaction, so a
write that returned is committed, and the database — not this process — decides every race:

- **Versions** of an integration are counted under a transaction-level advisory lock on the
  integration id (``pg_advisory_xact_lock``), so concurrent registrations on any replica get
  1, 2, 3, … without a gap or a clash.
- **Numbers**: the primary key of ``installation_numbers`` is the rule "one enabled installation
  of an integration holds a number"; the numbers are inserted with ``ON CONFLICT DO NOTHING`` and
  a number that was not inserted is reported as :class:`NumberTaken` with its holder (the
  transaction is then rolled back, so nothing of the refused installation is kept).
- **Idempotency keys** and **dedupe keys**: ``INSERT … ON CONFLICT DO NOTHING`` on a unique key.
  When it inserted nothing, the row holding the key is committed (PostgreSQL waited for its
  transaction), so the claim is atomic across replicas.
- **Held receipts** are taken with ``DELETE … RETURNING`` (``FOR UPDATE SKIP LOCKED`` for the
  due ones), so each is taken by one call on one replica.
- **Media holds** (docs/media.md) are leased with ``UPDATE … WHERE lease_until IS NULL OR
  lease_until <= now RETURNING``: a concurrent lease waits for the row and then finds it
  leased, so one process on one replica works on a hold at a time; only the lease's owner
  updates it or releases it (``DELETE … WHERE lease_owner = owner RETURNING``, and its event
  appended in the same transaction, as below).
- **Durable consumers**: :meth:`PostgresStore.lease_events` locks the consumer's row (created
  on first use) for its transaction, so the subscribers of one consumer, on any replica, take
  turns at its frontier and never get the same fresh event; expired leases are taken
  ``FOR UPDATE SKIP LOCKED`` (one being acknowledged right now is skipped, not waited for).

Event cursors follow commit order. A ``BIGSERIAL`` would not do: a sequence hands out values in
call order, transactions commit in another, and a reader that has seen cursor N could later
miss an N-1 committed after it. Here an append takes its cursors from the one-row table
``event_cursor`` (``INSERT … ON CONFLICT DO UPDATE SET last = last + n RETURNING last``) as the
transaction's last statement but one — after the request row, the dedupe keys, the transitions,
the held receipts and media holds, before the events themselves — and the row stays locked until the
commit. A concurrent append waits there and gets greater cursors only once this one is visible,
so once :meth:`~PostgresStore.latest_cursor` (that row) or a read returned N, every cursor up
to N is committed and none will appear below it. The cost: appends commit one after another
(the lock is held only for the events' insert and the commit itself), so each waits for the one
before it to flush its WAL. To keep that from capping ingests at one per flush, the ingests a
process makes at the same time run as one transaction (``_batcher.IngestBatcher``: one statement
per step for the whole batch, one commit; measured here, about 5,500 ingests/s from one process
instead of 1,100). The same statement sends ``NOTIFY msgbridge_events``
(:data:`EVENTS_CHANNEL`, payload the new latest cursor), which PostgreSQL delivers at the
commit and drops on a rollback.

Waking readers on every replica: :meth:`PostgresStore.listen_events` listens (``LISTEN``) on a
connection of its own and calls back on each notification, and once more after reconnecting
(see :class:`EventListener`). Notifications are only a wake-up; the events table is the truth,
so a lost notification delays a reader that re-reads the table now and then, never loses an
event.

Errors. Every asyncpg error becomes a :class:`StoreError`: a unique violation a
:class:`Conflict`, a lost or refused connection a plain :class:`StoreError`. A transaction that
PostgreSQL rolled back for a serialization failure or a deadlock is run again (a few times): it
left nothing behind. A read that lost its connection is run again once; a write is not (its
commit may have happened).

Values. Times are ``timestamptz`` (microseconds, UTC) and identifiers use the ``"C"``
collation, so they sort by code point as in SQLite. Maps, lists and headers are JSON text and
bodies ``bytea``, read back exactly. PostgreSQL text cannot hold U+0000: in a plain text value
(a message's text, an event's text, …) the store writes U+FFFD in its place rather than fail
the write — a webhook carrying one is still ingested — so such a value reads back changed.

Migrations: ``migrations/postgres/NNNN_name.sql``, applied by :meth:`PostgresStore.start` under
:data:`MIGRATION_LOCK` (``_migrate``).

The pool does not reset a connection when it is returned (no ``RESET ALL`` round trip per call):
the store never changes session state and takes only transaction-level locks, except the
migration lock, which it releases itself.
"""

from ._listener import EVENTS_CHANNEL, EventListener
from ._migrate import MIGRATION_LOCK
from ._store import PostgresStore

__all__ = ["EVENTS_CHANNEL", "MIGRATION_LOCK", "EventListener", "PostgresStore"]
