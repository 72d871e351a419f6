"""The SQLite store's checkpointer (server/store/sqlite/_workers.py) keeps the WAL file bounded
under steady writes: a passive checkpoint alone never lets SQLite start the log again while
writes keep coming, so the file grew for as long as the load lasted — on a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from server.store.sqlite._connect import connect, open_database
from server.store.sqlite._workers import Checkpointer, Writer

_PAGE = 4096
_WRITES = 4000  # three pages of log each: 48 MiB


async def _write_steadily(tmp_path: Path, *, restart_frames: int) -> tuple[int, int]:
    """Writes ``_WRITES`` blobs, each in its own transaction, with no pause between them while
    the checkpointer runs every 10 ms (a commit comes long before a checkpoint's copy and sync
    are done, as under steady load); returns (pages written, largest WAL size seen)."""
    database = tmp_path / "c.db"
    writer_conn, _ = open_database(
        tmp_path, database, synchronous="NORMAL", readers=0, migrations=[]
    )
    writer_conn.execute("CREATE TABLE t (v BLOB NOT NULL)")
    writer = Writer(writer_conn, max_batch=1)
    checkpointer = Checkpointer(
        connect(database, "NORMAL"),
        catch_up=writer.catch_up,
        interval_s=0.01,
        restart_frames=restart_frames,
    )
    wal = Path(f"{database}-wal")
    largest = 0

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (v) VALUES (?)", (os.urandom(_PAGE // 2),))

    try:
        for written in range(_WRITES):
            await writer.submit(insert)
            if written % 50 == 0:
                largest = max(largest, os.stat(wal).st_size)
    finally:
        checkpointer.stop()
        writer.stop()
    return _WRITES, largest


async def test_the_wal_stays_bounded_under_steady_writes(tmp_path: Path) -> None:
    (tmp_path / "passive").mkdir()
    (tmp_path / "restart").mkdir()
    # With passive checkpoints only, the log is never started again while writes keep coming:
    # the file keeps (nearly) every page written. This is the failure the restart prevents.
    pages, passive_only = await _write_steadily(tmp_path / "passive", restart_frames=10**9)
    assert passive_only >= pages * _PAGE / 2, (pages, passive_only)
    # The log starts again once it passes 16 frames and a checkpoint comes round: the file holds
    # what was written between a few checkpoints, not the whole history.
    _, restarted = await _write_steadily(tmp_path / "restart", restart_frames=16)
    assert restarted < passive_only / 4, (restarted, passive_only)


async def _grown_log(tmp_path: Path) -> tuple[Writer, Checkpointer, Path]:
    """A database whose log holds about 2 MiB the checkpointer has not cut back yet: written
    with no log restart (restart_frames out of reach), the checkpointer cutting back at rest
    only above 64 KiB."""
    database = tmp_path / "c.db"
    writer_conn, _ = open_database(
        tmp_path, database, synchronous="NORMAL", readers=0, migrations=[]
    )
    writer_conn.execute("CREATE TABLE t (v BLOB NOT NULL)")
    writer = Writer(writer_conn, max_batch=1)

    def insert(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO t (v) VALUES (?)", [(os.urandom(_PAGE // 2),) for _ in range(500)]
        )

    await writer.submit(insert)
    wal = Path(f"{database}-wal")
    assert os.stat(wal).st_size > 1024 * 1024
    checkpointer = Checkpointer(
        connect(database, "NORMAL"),
        catch_up=writer.catch_up,
        interval_s=0.01,
        restart_frames=10**9,
        shrink_above=64 * 1024,
    )
    return writer, checkpointer, wal


async def _size_once_settled(wal: Path, *, passes: int = 50) -> int:
    """The log's size after the checkpointer has had ``passes`` passes (10 ms each) to act."""
    for _ in range(passes):
        if os.stat(wal).st_size == 0:
            break
        await asyncio.sleep(0.01)
    return os.stat(wal).st_size


async def test_a_log_a_burst_grew_is_cut_back_at_rest_by_the_checkpointer(tmp_path: Path) -> None:
    writer, checkpointer, wal = await _grown_log(tmp_path)
    try:
        assert await _size_once_settled(wal, passes=500) == 0
        # Writing again starts a new log; at rest it stays as short as what was written.
        await writer.submit(lambda conn: conn.execute("INSERT INTO t (v) VALUES (x'00')"))
        assert 0 < os.stat(wal).st_size <= 64 * 1024
    finally:
        checkpointer.stop()
        writer.stop()


async def test_a_reader_on_the_log_puts_the_cut_off_without_holding_up_the_writer(
    tmp_path: Path,
) -> None:
    writer, checkpointer, wal = await _grown_log(tmp_path)
    reader = connect(tmp_path / "c.db", "NORMAL")
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM t").fetchone()  # a snapshot that needs the log
        grown = os.stat(wal).st_size
        assert await _size_once_settled(wal, passes=20) == grown  # busy: left as it is
        # The writer is not held up by a cut that waits (it does not wait).
        await writer.submit(lambda conn: conn.execute("INSERT INTO t (v) VALUES (x'00')"))
        reader.execute("COMMIT")
        assert await _size_once_settled(wal, passes=500) == 0
    finally:
        reader.close()
        checkpointer.stop()
        writer.stop()
