"""The SQLite store's checkpointer (server/store/sqlite/_workers.py) keeps the WAL file bounded
under steady writes: a passive checkpoint alone never lets SQLite start the log again while
writes keep coming, so the file grew for as long as the load lasted — on a real SQLite file."""

from __future__ import annotations

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
