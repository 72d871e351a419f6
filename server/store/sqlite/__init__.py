"""The SQLite store: one database file in WAL mode, one writer thread, a few reader threads.

Modules: ``_store`` (:class:`SqliteStore`), ``_inbound`` (its inbound-path methods), ``_workers``
(the threads and the checkpointer), ``_connect`` (files, WAL, connections, migrating), ``_sql``
(statements).

Writes. One dedicated thread owns the only write connection. A coroutine hands it a write
operation — a plain function ``op(conn) -> T`` — through a queue and awaits a future. The thread
takes everything queued (up to ``max_batch``), runs it in ONE transaction (when an operation
raises, that transaction is rolled back and the batch runs again with each operation inside its
own SAVEPOINT: the one that raises is rolled back alone; the others' work stays), commits once,
and only then resolves the futures, one ``call_soon_threadsafe`` per batch. So a
write that returned is committed, and under load one commit (one fsync at most) serves many
writes: from the event loop, one commit per row is several times slower.

Reads run the same way on ``readers`` threads of their own (default 2), each with its own
connection, so the event loop never blocks on the database; WAL lets them read while the writer
writes, and each read sees every write whose caller has been answered. Batching the reads too
(one loop wake-up per batch instead of an executor future per read) matters: measured here with
64 concurrent callers doing one read and two writes each, it raised throughput from about 4,000
to about 9,500 per second.

Durability. ``synchronous="NORMAL"`` (the default) with WAL never corrupts the database and
loses nothing when the process crashes: a committed transaction is in the WAL file, in the
operating system's hands. A power loss or kernel crash can lose the last transactions committed
before it (not corrupt the file). ``synchronous="FULL"`` syncs the WAL on every commit and loses
nothing even then, at the price of an fsync per batch.

Adding to the schema: add ``migrations/sqlite/NNNN_name.sql`` (the next four-digit number, then a
name; ``0002_inbound.sql`` added the inbound path's tables); it is applied in its own transaction
at the next :meth:`SqliteStore.start` and recorded in ``schema_migrations``. Never edit an applied
migration; add the next one. An append-only table gets its cursor from ``INTEGER PRIMARY KEY
AUTOINCREMENT`` (never reused, even after deletes). Then add the methods to
:class:`server.store.Store` and here (``_store.py``, or ``_inbound.py`` for the inbound path;
statements in ``_sql.py``, row mapping in :mod:`server.store._rows`): a write is
``await self._write(op)`` with ``op`` a function of the write connection that runs statements and
returns a value (it may raise a :class:`StoreError` to roll back just its own work); a read is
``await self._read(fn)`` (a read of several statements that must see one snapshot wraps them in
``BEGIN`` … ``COMMIT``). ``_write`` returns only after the commit, so waking stream subscribers
right after it never lets them look for a row that is not there yet. A PostgreSQL store keeps
its own migrations beside these, in ``migrations/postgres/``, numbered the same way.
"""

from ._store import DEFAULT_FILENAME, SqliteStore

__all__ = ["DEFAULT_FILENAME", "SqliteStore"]
