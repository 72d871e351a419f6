"""The SQLite store's threads: one writer, a few readers, a WAL checkpointer.

Each thread owns one connection. A coroutine hands a thread an operation — a plain function
``op(conn) -> T`` — through a queue and awaits a future; the thread takes everything queued (up
to ``max_batch``), runs it, and settles the batch's futures with one ``call_soon_threadsafe``.
The writer runs each batch as ONE transaction (again with each operation in its own SAVEPOINT
when one of them raised) and settles the futures only after the commit. See
:mod:`server.store.sqlite` for why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .._base import Conflict, StoreClosed, StoreError

__all__ = ["Checkpointer", "Readers", "Worker", "Writer"]

logger = logging.getLogger(__name__)

#: The WAL's length, in frames (pages), past which the log is started again: 1 GiB of 4 KiB
#: pages. Starting it again holds the writer up for a sync of the database (10-75 ms on a busy
#: disk here): at 16 MiB that came every second under load and a purge's ingest p99 went from
#: 6 ms to 38 ms; at 1 GiB it comes once a minute at the heaviest load measured.
RESTART_FRAMES = 262_144
#: At most this many frames are left for the writer to copy, after at most this many passes.
_CATCH_UP_FRAMES = 256
_CATCH_UP_PASSES = 4
#: A WAL file longer than this, once the log is at rest, is cut back to nothing by the
#: checkpointer (see :class:`Checkpointer`).
WAL_SIZE_LIMIT = 64 * 1024 * 1024

T = TypeVar("T")


@dataclass(slots=True)
class _Job(Generic[T]):
    op: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


_Result = tuple[Any, BaseException | None]
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def _as_store_error(exc: BaseException) -> BaseException:
    """The exception a caller sees: ours as is, the driver's wrapped, anything else as is."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        error: StoreError = Conflict(str(exc))
    elif isinstance(exc, sqlite3.Error):
        error = StoreError(f"{type(exc).__name__}: {exc}")
    else:
        return exc
    error.__cause__ = exc
    return error


def _resolve(outcomes: list[_Outcome]) -> None:
    """Runs on the event loop: settle the futures of one batch."""
    for future, value, exc in outcomes:
        if future.done():  # the caller was cancelled; the operation ran anyway
            continue
        if exc is None:
            future.set_result(value)
        else:
            future.set_exception(exc)


class Worker:
    """Threads, one per connection, that run queued operations in batches.

    Each thread takes everything queued (up to ``max_batch``), runs it (:meth:`_execute`), then
    settles the batch's futures with one ``call_soon_threadsafe`` per event loop: one wake-up of
    the loop per batch rather than per operation, which is what keeps the loop and these threads
    from trading the GIL back and forth under load.
    """

    def __init__(
        self, connections: Sequence[sqlite3.Connection], *, name: str, max_batch: int
    ) -> None:
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, args=(conn,), name=f"{name}-{n}", daemon=True)
            for n, conn in enumerate(connections)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, op: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._stopping:
                raise StoreClosed("the store is closed")
            self._queue.put(_Job(op, future, loop))
        return future

    def stop(self) -> None:
        """Finish everything queued, end the threads, close the connections (blocking)."""
        with self._lock:
            if not self._stopping:
                self._stopping = True
                for _ in self._threads:
                    self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            stop = False
            while not stop:
                job = self._queue.get()
                if job is None:
                    break
                batch = [job]
                while len(batch) < self._max_batch:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:  # each thread takes exactly one stop mark
                        stop = True
                        break
                    batch.append(more)
                results = self._execute(conn, batch)
                by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
                for item, (value, failure) in zip(batch, results, strict=True):
                    by_loop.setdefault(item.loop, []).append((item.future, value, failure))
                for loop, outcomes in by_loop.items():
                    # RuntimeError: that loop is closed, so nobody is waiting any more.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(_resolve, outcomes)
                self._between_batches(conn)
        finally:
            conn.close()

    def _between_batches(self, conn: sqlite3.Connection) -> None:
        """Runs on a worker thread after each batch's futures are settled: nothing by default."""

    def _execute(self, conn: sqlite3.Connection, batch: Sequence[_Job[Any]]) -> list[_Result]:
        results: list[_Result] = []
        for job in batch:
            try:
                results.append((job.op(conn), None))
            except Exception as exc:
                results.append((None, _as_store_error(exc)))
        return results


class Writer(Worker):
    """The one thread that owns the write connection: each batch is one transaction.

    A batch first runs as it is: every operation in one transaction, committed once, and only
    then are its futures settled. When an operation raises, that transaction is rolled back and
    the batch runs again with each operation inside its own SAVEPOINT, so that the one that
    raises is rolled back alone and the others' work is kept. Operations are plain functions of
    the connection (the store's methods build them), so running one again after a rollback does
    the same thing; a SAVEPOINT per operation cost every batch about 5 % of the write path, for
    the rare batch in which one fails.
    """

    def __init__(self, conn: sqlite3.Connection, *, max_batch: int) -> None:
        self._catch_up = threading.Event()
        super().__init__([conn], name="msgbridge-store-writer", max_batch=max_batch)

    def catch_up(self) -> None:
        """Ask for the WAL frames that no checkpoint has copied yet to be copied between two
        batches (thread-safe), so that the next write starts the log again: see
        :class:`Checkpointer`."""
        self._catch_up.set()

    def _between_batches(self, conn: sqlite3.Connection) -> None:
        if not self._catch_up.is_set():
            return
        self._catch_up.clear()
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            logger.warning("a WAL checkpoint failed; the next one will try again")

    def _execute(self, conn: sqlite3.Connection, batch: Sequence[_Job[Any]]) -> list[_Result]:
        try:
            results = self._optimistic(conn, batch)
            if results is None:
                results = self._isolated(conn, batch)
        except Exception as exc:  # the transaction itself failed: nothing of it was kept
            logger.error("store write transaction failed: %s", type(exc).__name__)
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    logger.exception("store rollback failed")
            results = [(None, _as_store_error(exc))] * len(batch)
        return results

    @staticmethod
    def _optimistic(conn: sqlite3.Connection, batch: Sequence[_Job[Any]]) -> list[_Result] | None:
        """The batch as one transaction, committed; None (rolled back) when an operation
        raised — alone in its batch, its error."""
        conn.execute("BEGIN IMMEDIATE")
        results: list[_Result] = []
        for job in batch:
            try:
                results.append((job.op(conn), None))
            except Exception as exc:
                conn.execute("ROLLBACK")
                if len(batch) == 1:
                    return [(None, _as_store_error(exc))]
                return None
        conn.execute("COMMIT")
        return results

    @staticmethod
    def _isolated(conn: sqlite3.Connection, batch: Sequence[_Job[Any]]) -> list[_Result]:
        """The batch as one transaction, each operation in its own SAVEPOINT."""
        results: list[_Result] = []
        conn.execute("BEGIN IMMEDIATE")
        for job in batch:
            conn.execute("SAVEPOINT op")
            try:
                value = job.op(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                results.append((None, _as_store_error(exc)))
            else:
                conn.execute("RELEASE op")
                results.append((value, None))
        conn.execute("COMMIT")
        return results


class Readers(Worker):
    """Reader threads, each with its own connection; under WAL they read while the writer writes.

    Reads run in autocommit mode: each statement sees everything committed before it started,
    which includes every write whose caller has been answered.
    """

    def __init__(self, connections: Sequence[sqlite3.Connection], *, max_batch: int) -> None:
        super().__init__(connections, name="msgbridge-store-reader", max_batch=max_batch)


class Checkpointer:
    """Copies the WAL back into the database on its own connection and thread, every
    ``interval_s`` seconds, and once more (TRUNCATE) when stopped.

    Its checkpoints are PASSIVE: they never hold the writer up. But SQLite starts the log again
    from its beginning only when a write begins after a checkpoint copied every frame, and under
    steady writes a checkpoint never does: frames arrive while it copies and syncs. The WAL file
    then grew by megabytes a second for as long as the load lasted. So once the log holds
    ``restart_frames`` frames, the checkpointer copies until few are left and asks the writer to
    copy the rest between two batches (``catch_up``, :meth:`Writer.catch_up`): the writer's next
    transaction then starts the log again, and ``PRAGMA journal_size_limit`` cuts the file back.
    Under lighter load a checkpoint catches up on its own and SQLite starts the log again itself.

    Starting the log again does not shorten the file; cutting back a file that a burst grew
    (a bulk load, a purge, a busy minute) is the checkpointer's too. Left to the writer (``PRAGMA
    journal_size_limit``), it came with the first write after the burst: an ``ftruncate`` of a
    700 MB log took 116 ms on this machine, and every webhook queued behind it waited (seen as
    a 140 ms write at the start of each round of the retention benchmark, docs/operations.md,
    "Sizing"). So once the log is at rest — everything copied, nothing written since the last
    pass — and its file is longer than ``shrink_above`` bytes, the checkpointer truncates it
    (``wal_checkpoint(TRUNCATE)``) while nobody writes. It does not wait for readers or a
    writer to do so: busy, it tries again at a later pass.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        catch_up: Callable[[], None],
        interval_s: float = 1.0,
        restart_frames: int = RESTART_FRAMES,
        shrink_above: int = WAL_SIZE_LIMIT,
    ) -> None:
        self._conn = conn
        self._catch_up = catch_up
        self._interval_s = interval_s
        self._restart_frames = restart_frames
        self._shrink_above = shrink_above
        self._wal = Path(f"{conn.execute('PRAGMA database_list').fetchone()[2]}-wal")
        self._frames_before = -1
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                self._checkpoint()
            except sqlite3.Error:
                logger.warning("a WAL checkpoint failed; the next one will try again")

    def _checkpoint(self) -> None:
        _, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        at_rest = frames == copied == self._frames_before
        self._frames_before = frames
        if at_rest:
            self._shrink()
            return
        if frames < self._restart_frames:
            return
        # Each pass copies what the writer added during the last one: a few passes leave the
        # writer a few frames (and their sync) to copy, not a second's worth. Writes faster than
        # the passes copy (a purge) leave more: the writer is not asked then, and the log is
        # started again once they slow down.
        passes = 0
        while frames - copied > _CATCH_UP_FRAMES:
            if passes == _CATCH_UP_PASSES:
                return
            passes += 1
            _, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self._catch_up()

    def _shrink(self) -> None:
        """Cut the log's file back to nothing when it is longer than ``shrink_above``, unless a
        reader or the writer is busy with it (then at a later pass: this never waits)."""
        try:
            if self._wal.stat().st_size <= self._shrink_above:
                return
        except FileNotFoundError:
            return
        (waits,) = self._conn.execute("PRAGMA busy_timeout").fetchone()
        self._conn.execute("PRAGMA busy_timeout = 0")
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {int(waits):d}")

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        self._conn.close()
