"""Opening an SQLite store's database: its files (owner-only), WAL mode, its connections, the
migrations."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from .._base import StoreError
from .._migrations import Migration, apply_migrations, load_migrations
from ._workers import RESTART_FRAMES

__all__ = ["Synchronous", "connect", "open_database"]

logger = logging.getLogger(__name__)

Synchronous = Literal["NORMAL", "FULL"]

_BUSY_TIMEOUT_MS = 10_000
# The writer cuts the WAL file back (when the log starts again) only past this: the size at
# which the log is started again under load (RESTART_FRAMES of 4 KiB pages, 1 GiB), so that
# only what a burst wrote beyond it is cut in the writer's path. Below it, the checkpointer cuts
# a long file back once the log is at rest (Checkpointer; an ftruncate of 700 MB took 116 ms).
_WAL_SIZE_LIMIT = RESTART_FRAMES * 4096
# Reads through a memory map of the database's first GiB: a page the OS has cached costs no
# system call and no copy. Without it a read touching rows spread through a grown store (one
# organisation's events among a million) paid a pread per page: 0.78x the rate of the same read
# in a store of 10,000 events, against 1.23x with it (make bench-grown). Writes do not use it.
_MMAP_SIZE = 1024 * 1024 * 1024
# The files SQLite keeps beside the database: it creates each with the database file's own mode.
_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")


def connect(database: Path, synchronous: Synchronous) -> sqlite3.Connection:
    """A connection in autocommit mode, usable from any (one at a time) thread."""
    conn = sqlite3.connect(
        database, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS:d}")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA mmap_size = {_MMAP_SIZE:d}")
    return conn


def open_database(
    directory: Path,
    database: Path,
    *,
    synchronous: Synchronous,
    readers: int,
    migrations: Sequence[Migration] | None,
) -> tuple[sqlite3.Connection, list[sqlite3.Connection]]:
    """Open the writer's and the readers' connections and migrate (blocking: run it in a
    worker thread). Any failure closes what was opened and is a :class:`StoreError`."""
    opened: list[sqlite3.Connection] = []
    try:
        # The data directory holds the messages and (sealed) secrets: only its owner may list
        # it. An existing directory is the operator's to set; it is left as it is.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private_database(database)
        writer = connect(database, synchronous)
        opened.append(writer)
        mode = _enable_wal(writer)
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot put {database} in WAL mode (got {mode!r})")
        # Checkpoints run on a thread of their own (Checkpointer), never inside a commit:
        # an automatic checkpoint in the writer's commit would hold up every write queued
        # behind it (a tail of tens of milliseconds under steady webhook load).
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        # When the log starts again from its beginning (Checkpointer), a file grown longer
        # than this by a burst is cut back to it; shorter, the checkpointer cuts it at rest.
        writer.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT:d}")
        apply_migrations(writer, load_migrations() if migrations is None else migrations)
        reader_connections = []
        for _ in range(readers):
            reader = connect(database, synchronous)
            opened.append(reader)
            reader.execute("PRAGMA query_only = ON")
            reader_connections.append(reader)
        return writer, reader_connections
    except BaseException as exc:
        for conn in opened:
            conn.close()
        if isinstance(exc, (sqlite3.Error, OSError)):
            raise StoreError(f"cannot open {database}: {exc}") from exc
        raise


def _enable_wal(conn: sqlite3.Connection) -> object:
    """Put the database in WAL mode; returns the journal mode it is in.

    Switching a new database's journal mode needs an exclusive lock, and SQLite answers "database
    is locked" at once, without its busy handler, while another process opening the same new
    database holds a lock: retry for up to the busy timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _private_database(database: Path) -> None:
    """Make the database and its companion files readable by their owner only (0600).

    SQLite creates a new database with the process's umask (0644 usually) and gives the -wal,
    -shm and journal files it creates later the database file's mode. So the database is created
    here first, 0600 (an empty file is a new database to SQLite), and an existing database's files
    lose any group and other access they were given, e.g. by an older version.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for path in (database, *(Path(f"{database}{suffix}") for suffix in _COMPANION_SUFFIXES)):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            continue
        if not mode & 0o077:
            continue
        try:
            os.chmod(path, mode & 0o700)
        except OSError:  # another user's file: SQLite may still open it, so do not fail here
            logger.warning(
                "a database file is open to other users and cannot be changed",
                extra={"path": str(path), "mode": f"{mode:o}"},
            )
        else:
            logger.warning(
                "took group and other access from a database file",
                extra={"path": str(path), "mode": f"{mode:o}"},
            )
